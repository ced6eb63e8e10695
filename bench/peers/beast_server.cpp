// beast_server: a Boost.Beast peer for metrics-agent's fan-out benchmark
// (bench/run.sh, bench/compare.py as server "beast"); bench-only, not part of
// the agent or its tests. It does what bench/floor_server does, the way Beast
// is meant to be used on one thread: one io_context, a websocket::stream per
// client accepted on any path, and at every whole second of wall-clock time
// one text message shaped like the flat stream's
// ({"cpu":..,"memory":..,"disk":..,"timestamp":".."}, stamped when built),
// shared by every client and written with async_write. Each client has its
// own write queue, so a message meets a write still in progress instead of
// being dropped. What clients send is read and discarded; Beast answers
// their close frames. Beast's suggested server timeouts apply (30 s for the
// handshake; a client silent for 150 s gets a ping, and is dropped if it
// stays silent another 150 s). SIGTERM or SIGINT closes every client with
// 1001 and exits 0.
//
//   beast_server --listen 127.0.0.1:PORT [--max-clients N]
//
// Other flags (with their value) are accepted and ignored, as bench/run.sh
// passes the agent's. Built by `make bench` when Debian's libboost1.81-dev is
// installed (CMake target beast_server, not part of `all`). Linux only.

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <sys/resource.h>
#include <time.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace ws = boost::beast::websocket;
using tcp = net::ip::tcp;

#include "../tick_message.hpp"

namespace {

using bench::message_at;
using bench::raise_open_file_limit;
using bench::wall_us;

class Session;

// What the whole server shares; everything runs on the io_context's one thread.
struct Hub {
    std::unordered_set<Session*> open;  // clients past the handshake, not yet gone
    bool stopping = false;
    std::size_t deepest_queue = 0;
    std::uint64_t writes = 0, write_errors = 0;
    std::function<void()> all_gone;  // called when the last client leaves during shutdown
};

using Message = std::shared_ptr<const std::string>;

class Session : public std::enable_shared_from_this<Session> {
 public:
    Session(tcp::socket sock, Hub& hub) : ws_(std::move(sock)), hub_(hub) {}

    void start() {
        ws_.set_option(ws::stream_base::timeout::suggested(beast::role_type::server));
        ws_.text(true);
        ws_.async_accept([self = shared_from_this()](beast::error_code ec) { self->on_accept(ec); });
    }

    // Queues one message; it is written when those before it are.
    void send(const Message& m) {
        if (closing_) return;
        queue_.push_back(m);
        if (queue_.size() > hub_.deepest_queue) hub_.deepest_queue = queue_.size();
        if (queue_.size() == 1) write_next();
    }

    // Server shutdown: what is queued but not being written is dropped, and
    // the close frame (1001) goes out once the write in progress is done.
    void shut_down() {
        if (closing_) return;
        closing_ = true;
        if (queue_.size() > 1) queue_.erase(queue_.begin() + 1, queue_.end());
        if (queue_.empty()) close();
    }

 private:
    void on_accept(beast::error_code ec) {
        if (ec || hub_.stopping) return;  // the socket goes with the last handler
        hub_.open.insert(this);
        read();
    }

    void read() {
        ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) {  // error::closed after a close handshake, or a lost connection
                self->hub_.open.erase(self.get());
                if (self->hub_.stopping && self->hub_.open.empty()) self->hub_.all_gone();
                return;
            }
            self->in_.consume(self->in_.size());
            self->read();
        });
    }

    void write_next() {
        ws_.async_write(net::buffer(*queue_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->on_write(ec);
        });
    }

    void on_write(beast::error_code ec) {
        queue_.pop_front();
        if (ec) {
            ++hub_.write_errors;
            queue_.clear();
            return;  // the pending read ends too and removes the session
        }
        ++hub_.writes;
        if (closing_) close();
        else if (!queue_.empty()) write_next();
    }

    void close() {
        ws_.async_close(ws::close_code::going_away, [self = shared_from_this()](beast::error_code) {});
    }

    ws::stream<beast::tcp_stream> ws_;
    Hub& hub_;
    beast::flat_buffer in_;
    std::deque<Message> queue_;
    bool closing_ = false;
};

}  // namespace

int main(int argc, char** argv) {
    const std::string listen = bench::listen_argument(argc, argv);
    raise_open_file_limit();
    std::signal(SIGPIPE, SIG_IGN);

    net::io_context ioc(1);
    std::size_t colon = listen.rfind(':');
    beast::error_code ec;
    tcp::endpoint at(net::ip::make_address(listen.substr(0, colon), ec),
                     std::uint16_t(std::atoi(listen.c_str() + colon + 1)));
    tcp::acceptor acceptor(ioc);
    if (!ec) acceptor.open(at.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(at, ec);
    if (!ec) acceptor.listen(4096, ec);
    if (ec) {
        std::fprintf(stderr, "beast_server: cannot listen on %s: %s\n", listen.c_str(), ec.message().c_str());
        return 1;
    }

    Hub hub;
    net::steady_timer accept_pause(ioc);  // after a failed accept (out of descriptors), not to spin
    std::function<void()> accept = [&] {
        acceptor.async_accept([&](beast::error_code aec, tcp::socket sock) {
            if (aec == net::error::operation_aborted || hub.stopping) return;
            if (aec) {
                accept_pause.expires_after(std::chrono::milliseconds(50));
                accept_pause.async_wait([&](beast::error_code pec) {
                    if (!pec && !hub.stopping) accept();
                });
                return;
            }
            sock.set_option(tcp::no_delay(true), aec);
            std::make_shared<Session>(std::move(sock), hub)->start();
            accept();
        });
    };
    accept();

    // The tick: at every whole second, one message for every open client.
    net::system_timer tick(ioc);
    std::function<void()> arm = [&] {
        std::int64_t next = (wall_us() / 1000000 + 1) * 1000000;
        tick.expires_at(std::chrono::system_clock::time_point(std::chrono::microseconds(next)));
        tick.async_wait([&](beast::error_code tec) {
            if (tec || hub.stopping) return;
            auto m = std::make_shared<const std::string>(message_at(wall_us()));
            for (Session* s : hub.open) s->send(m);
            arm();  // a tick already past is skipped, not sent late
        });
    };
    arm();

    // Shutdown: stop accepting and ticking, close every client with 1001,
    // and leave when they are all gone or after a second at most.
    std::size_t at_exit = 0;
    net::signal_set signals(ioc, SIGTERM, SIGINT);
    net::steady_timer give_up(ioc);
    hub.all_gone = [&] { ioc.stop(); };
    signals.async_wait([&](beast::error_code sec, int) {
        if (sec) return;
        hub.stopping = true;
        at_exit = hub.open.size();
        acceptor.close();
        accept_pause.cancel();
        tick.cancel();
        if (hub.open.empty()) ioc.stop();
        std::vector<Session*> all(hub.open.begin(), hub.open.end());
        for (Session* s : all) s->shut_down();
        give_up.expires_after(std::chrono::seconds(1));
        give_up.async_wait([&](beast::error_code gec) {
            if (!gec) ioc.stop();
        });
    });
    ioc.run();
    std::fprintf(stderr, "beast_server: %zu clients at exit, %llu messages written, %llu write errors, "
                 "deepest write queue %zu\n",
                 at_exit, static_cast<unsigned long long>(hub.writes),
                 static_cast<unsigned long long>(hub.write_errors), hub.deepest_queue);
    return 0;
}
