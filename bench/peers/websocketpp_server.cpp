// websocketpp_server: a websocketpp peer for metrics-agent's fan-out benchmark
// (bench/run.sh, bench/compare.py as server "wspp"); bench-only, not part of
// the agent or its tests. It does what bench/floor_server does, the way
// websocketpp is meant to be used on one thread: a server<config::asio>
// (Debian's websocketpp on Boost.Asio) run by one thread, clients accepted on
// any path and remembered from their open to their close, and at every whole
// second of wall-clock time (a system_timer on the server's io_service) one
// text message shaped like the flat stream's
// ({"cpu":..,"memory":..,"disk":..,"timestamp":".."}, stamped when built),
// handed to server::send() for every client; websocketpp queues what it
// cannot write at once, so nothing is dropped. The stock config::asio is used
// as is (its locks and strands, uncontended on one thread; 5 s handshake
// timeouts; no pings). What clients send is discarded; websocketpp answers
// their close frames. SIGTERM or SIGINT closes every client with 1001 and
// exits 0.
//
//   websocketpp_server --listen 127.0.0.1:PORT [--max-clients N]
//
// Other flags (with their value) are accepted and ignored, as bench/run.sh
// passes the agent's. Built by `make bench` when Debian's libwebsocketpp-dev
// and libboost1.81-dev are installed (CMake target websocketpp_server, not
// part of `all`). Linux only.

#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_timer.hpp>

#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "../tick_message.hpp"

namespace {

using Server = websocketpp::server<websocketpp::config::asio>;
using Handle = websocketpp::connection_hdl;

using bench::message_at;
using bench::raise_open_file_limit;
using bench::wall_us;

}  // namespace

int main(int argc, char** argv) {
    const std::string listen = bench::listen_argument(argc, argv);
    raise_open_file_limit();
    std::signal(SIGPIPE, SIG_IGN);

    Server srv;
    srv.clear_access_channels(websocketpp::log::alevel::all);
    srv.clear_error_channels(websocketpp::log::elevel::all);
    srv.set_error_channels(websocketpp::log::elevel::fatal);
    srv.init_asio();
    srv.set_reuse_addr(true);
    srv.set_listen_backlog(4096);

    std::set<Handle, std::owner_less<Handle>> open;  // clients past the handshake, not yet closed
    bool stopping = false;
    std::uint64_t sends = 0, send_errors = 0;
    std::size_t at_exit = 0;

    srv.set_socket_init_handler([](Handle, boost::asio::ip::tcp::socket& s) {
        boost::system::error_code ec;
        s.set_option(boost::asio::ip::tcp::no_delay(true), ec);
    });
    srv.set_open_handler([&](Handle h) {
        if (stopping) srv.close(h, websocketpp::close::status::going_away, "");
        else open.insert(h);
    });
    auto gone = [&](Handle h) {
        open.erase(h);
        if (stopping && open.empty()) srv.stop();
    };
    srv.set_close_handler(gone);
    srv.set_fail_handler(gone);
    srv.set_message_handler([](Handle, Server::message_ptr) {});

    std::size_t colon = listen.rfind(':');
    boost::system::error_code aec;
    auto addr = boost::asio::ip::make_address(listen.substr(0, colon), aec);
    websocketpp::lib::error_code ec;
    if (!aec) srv.listen(boost::asio::ip::tcp::endpoint(addr, std::uint16_t(std::atoi(listen.c_str() + colon + 1))), ec);
    if (aec || ec) {
        std::fprintf(stderr, "websocketpp_server: cannot listen on %s: %s\n", listen.c_str(),
                     aec ? aec.message().c_str() : ec.message().c_str());
        return 1;
    }
    srv.start_accept();

    // The tick: at every whole second, one message for every open client.
    boost::asio::system_timer tick(srv.get_io_service());
    std::function<void()> arm = [&] {
        std::int64_t next = (wall_us() / 1000000 + 1) * 1000000;
        tick.expires_at(std::chrono::system_clock::time_point(std::chrono::microseconds(next)));
        tick.async_wait([&](const boost::system::error_code& tec) {
            if (tec || stopping) return;
            std::string m = message_at(wall_us());
            for (const Handle& h : open) {
                websocketpp::lib::error_code sec;
                srv.send(h, m, websocketpp::frame::opcode::text, sec);
                if (sec) ++send_errors;
                else ++sends;
            }
            arm();  // a tick already past is skipped, not sent late
        });
    };
    arm();

    // Shutdown: stop accepting and ticking, close every client with 1001,
    // and leave when they are all gone or after a second at most.
    boost::asio::signal_set signals(srv.get_io_service(), SIGTERM, SIGINT);
    boost::asio::steady_timer give_up(srv.get_io_service());
    signals.async_wait([&](const boost::system::error_code& sig_ec, int) {
        if (sig_ec) return;
        stopping = true;
        at_exit = open.size();
        websocketpp::lib::error_code lec;
        srv.stop_listening(lec);
        tick.cancel();
        if (open.empty()) srv.stop();
        std::set<Handle, std::owner_less<Handle>> all = open;
        for (const Handle& h : all) {
            websocketpp::lib::error_code cec;
            srv.close(h, websocketpp::close::status::going_away, "", cec);
        }
        give_up.expires_after(std::chrono::seconds(1));
        give_up.async_wait([&](const boost::system::error_code& gec) {
            if (!gec) srv.stop();
        });
    });
    srv.run();
    std::fprintf(stderr, "websocketpp_server: %zu clients at exit, %llu messages queued, %llu send errors\n", at_exit,
                 static_cast<unsigned long long>(sends), static_cast<unsigned long long>(send_errors));
    return 0;
}
