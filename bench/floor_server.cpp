// floor_server: the least a fan-out server can do, as a yardstick for
// metrics-agent in bench/run.sh. It accepts WebSocket clients on any path,
// and at every whole second builds one text frame shaped like the flat
// stream's ({"cpu":..,"memory":..,"disk":..,"timestamp":".."}) and writes
// it to every client with one send() each, split over --threads threads
// (the main thread and --threads - 1 others, joined before it goes on).
// Nothing else: no queue (a send that does not take the whole frame is
// counted, not retried), no parsing of what clients send, no timers but
// the tick. Only the handshake borrows the agent's header, for SHA-1.
//
// With --io-uring, each sending thread hands its slice to the kernel as
// batches of IORING_OP_SEND entries on a ring of its own (raw io_uring
// syscalls, no liburing), one io_uring_enter() per batch submitting it and
// waiting for its completions, instead of one send() call per client. The
// bytes on the wire are the same; only the syscalls differ. This is how
// bench/compare.py measures what io_uring would change for the agent.
//
//   floor_server --listen 127.0.0.1:PORT [--threads K] [--io-uring] [--max-clients N]
//
// Linux only.

#include "metrics_agent.hpp"
#include "tick_message.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

using bench::wall_us;

// The threads that share a tick's sends with the main thread: part 0 runs on
// the caller, parts 1..K-1 on the workers, and run() returns when all are done.
class Senders {
 public:
    explicit Senders(unsigned parts) : parts_(parts) {
        for (unsigned p = 1; p < parts; ++p) threads_.emplace_back([this, p] { work(p); });
    }
    ~Senders() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }
    template <class Fn>
    void run(Fn fn) {
        std::function<void(unsigned)> job(fn);
        {
            std::lock_guard<std::mutex> lk(mu_);
            job_ = &job;
            pending_ = parts_ - 1;
            ++generation_;
        }
        wake_.notify_all();
        fn(0);
        std::unique_lock<std::mutex> lk(mu_);
        done_.wait(lk, [this] { return pending_ == 0; });
    }

 private:
    void work(unsigned part) {
        std::uint64_t seen = 0;
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            auto* job = job_;
            lk.unlock();
            (*job)(part);
            lk.lock();
            if (--pending_ == 0) done_.notify_one();
        }
    }
    unsigned parts_;
    std::mutex mu_;
    std::condition_variable wake_, done_;
    std::uint64_t generation_ = 0;
    unsigned pending_ = 0;
    bool stop_ = false;
    std::function<void(unsigned)>* job_ = nullptr;
    std::vector<std::thread> threads_;
};

// One io_uring instance driven by raw syscalls: sends a buffer to many
// sockets, kBatch at a time, and counts short and failed sends.
class SendRing {
 public:
    static constexpr unsigned kBatch = 1024;

    SendRing() {
        io_uring_params p{};
        long fd = syscall(__NR_io_uring_setup, kBatch, &p);
        if (fd < 0) {
            std::fprintf(stderr, "floor_server: io_uring_setup: %s\n", std::strerror(errno));
            std::exit(1);
        }
        fd_ = int(fd);
        sq_len_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
        cq_len_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
        if (p.features & IORING_FEAT_SINGLE_MMAP) sq_len_ = cq_len_ = std::max(sq_len_, cq_len_);
        sq_ = map(sq_len_, IORING_OFF_SQ_RING);
        cq_ = (p.features & IORING_FEAT_SINGLE_MMAP) ? sq_ : map(cq_len_, IORING_OFF_CQ_RING);
        sqes_len_ = p.sq_entries * sizeof(io_uring_sqe);
        sqes_ = static_cast<io_uring_sqe*>(map(sqes_len_, IORING_OFF_SQES));
        sq_tail_ = at<unsigned>(sq_, p.sq_off.tail);
        sq_mask_ = *at<unsigned>(sq_, p.sq_off.ring_mask);
        sq_array_ = at<unsigned>(sq_, p.sq_off.array);
        cq_head_ = at<unsigned>(cq_, p.cq_off.head);
        cq_tail_ = at<unsigned>(cq_, p.cq_off.tail);
        cq_mask_ = *at<unsigned>(cq_, p.cq_off.ring_mask);
        cqes_ = at<io_uring_cqe>(cq_, p.cq_off.cqes);
        entries_ = p.sq_entries;
    }
    ~SendRing() {
        munmap(sqes_, sqes_len_);
        if (cq_ != sq_) munmap(cq_, cq_len_);
        munmap(sq_, sq_len_);
        close(fd_);
    }
    SendRing(const SendRing&) = delete;
    SendRing& operator=(const SendRing&) = delete;

    void send_all(const int* fds, std::size_t n, const std::string& frame, std::atomic<std::uint64_t>& short_sends,
                  std::atomic<std::uint64_t>& failed_sends) {
        for (std::size_t done = 0; done < n;) {
            unsigned batch = unsigned(std::min<std::size_t>(n - done, entries_));
            unsigned tail = *sq_tail_;
            for (unsigned i = 0; i < batch; ++i) {
                unsigned slot = (tail + i) & sq_mask_;
                io_uring_sqe& e = sqes_[slot];
                std::memset(&e, 0, sizeof e);
                e.opcode = IORING_OP_SEND;
                e.fd = fds[done + i];
                e.addr = reinterpret_cast<std::uintptr_t>(frame.data());
                e.len = unsigned(frame.size());
                e.msg_flags = MSG_NOSIGNAL | MSG_DONTWAIT;  // a full socket fails now, as send() would
                sq_array_[slot] = slot;
            }
            __atomic_store_n(sq_tail_, tail + batch, __ATOMIC_RELEASE);
            unsigned reaped = 0;
            long submitted = syscall(__NR_io_uring_enter, fd_, batch, batch, IORING_ENTER_GETEVENTS, nullptr, 0);
            if (submitted < 0 && errno != EINTR) {
                std::fprintf(stderr, "floor_server: io_uring_enter: %s\n", std::strerror(errno));
                std::exit(1);
            }
            while (reaped < batch) {
                unsigned head = *cq_head_, ctail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
                for (; head != ctail; ++head, ++reaped) {
                    int res = cqes_[head & cq_mask_].res;
                    if (res < 0) ++failed_sends;
                    else if (std::size_t(res) != frame.size()) ++short_sends;
                }
                __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
                if (reaped < batch) syscall(__NR_io_uring_enter, fd_, 0, batch - reaped, IORING_ENTER_GETEVENTS, nullptr, 0);
            }
            done += batch;
        }
    }

 private:
    void* map(std::size_t len, off_t what) {
        void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, what);
        if (p == MAP_FAILED) {
            std::fprintf(stderr, "floor_server: io_uring mmap: %s\n", std::strerror(errno));
            std::exit(1);
        }
        return p;
    }
    template <class T>
    static T* at(void* base, unsigned offset) {
        return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
    }
    int fd_ = -1;
    std::size_t sq_len_ = 0, cq_len_ = 0, sqes_len_ = 0;
    void *sq_ = nullptr, *cq_ = nullptr;
    io_uring_sqe* sqes_ = nullptr;
    unsigned *sq_tail_ = nullptr, *sq_array_ = nullptr, *cq_head_ = nullptr, *cq_tail_ = nullptr;
    unsigned sq_mask_ = 0, cq_mask_ = 0, entries_ = 0;
    io_uring_cqe* cqes_ = nullptr;
};

// One unmasked text frame holding bench::message_at(tick_us).
std::string frame_for(std::int64_t tick_us) {
    std::string json = bench::message_at(tick_us);
    std::string f;
    f += char(0x81);
    f += char(json.size());  // always < 126 bytes
    f += json;
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:54112";
    unsigned threads = 1;
    bool uring = false;
    for (int i = 1; i < argc; i += 2) {
        std::string a = argv[i];
        if (a == "--io-uring") {
            uring = true;
            --i;
            continue;
        }
        if (i + 1 >= argc) a.clear();
        if (a == "--listen") listen = argv[i + 1];
        else if (a == "--threads") threads = unsigned(std::max(1, std::atoi(argv[i + 1])));
        else if (a == "--max-clients") {
        } else {
            std::fprintf(stderr, "usage: floor_server --listen ADDR:PORT [--threads K] [--io-uring]\n");
            return 2;
        }
    }
    metrics_agent::raise_open_file_limit();
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGTERM, on_signal);
    ::signal(SIGINT, on_signal);

    std::size_t colon = listen.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(std::uint16_t(std::atoi(listen.c_str() + colon + 1)));
    inet_pton(AF_INET, listen.substr(0, colon).c_str(), &addr.sin_addr);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 4096) != 0) {
        std::fprintf(stderr, "floor_server: cannot listen on %s: %s\n", listen.c_str(), std::strerror(errno));
        return 1;
    }
    int ep = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

    std::unordered_map<int, std::string> handshaking;
    std::vector<int> clients;
    std::unordered_map<int, std::size_t> where;  // fd -> index in clients
    Senders senders(threads);
    std::vector<std::unique_ptr<SendRing>> rings(uring ? threads : 0);  // one per part, made by its thread
    std::atomic<std::uint64_t> short_sends{0}, failed_sends{0};
    std::int64_t next_tick = (wall_us() / 1000000 + 1) * 1000000;
    std::vector<epoll_event> events(1024);
    char buf[4096];

    auto drop = [&](int fd) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        auto it = where.find(fd);
        if (it != where.end()) {
            std::size_t i = it->second;
            clients[i] = clients.back();
            where[clients[i]] = i;
            clients.pop_back();
            where.erase(fd);
        }
        handshaking.erase(fd);
        close(fd);
    };

    while (!g_stop) {
        std::int64_t now = wall_us();
        if (now >= next_tick) {
            std::string frame = frame_for(wall_us());  // stamped when built, as the agent does
            const int* fds = clients.data();
            std::size_t n = clients.size();
            unsigned parts = threads;
            senders.run([&, fds, n, parts](unsigned p) {
                std::size_t begin = n * p / parts, end = n * (p + 1) / parts;
                if (!rings.empty()) {
                    if (!rings[p]) rings[p].reset(new SendRing);
                    rings[p]->send_all(fds + begin, end - begin, frame, short_sends, failed_sends);
                    return;
                }
                for (std::size_t i = begin; i < end; ++i) {
                    ssize_t w = send(fds[i], frame.data(), frame.size(), MSG_NOSIGNAL);
                    if (w < 0) ++failed_sends;
                    else if (std::size_t(w) != frame.size()) ++short_sends;
                }
            });
            next_tick = (wall_us() / 1000000 + 1) * 1000000;
            continue;
        }
        int timeout = int((next_tick - now + 999) / 1000);
        int k = epoll_wait(ep, events.data(), int(events.size()), timeout);
        for (int e = 0; e < k; ++e) {
            int fd = events[e].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
                    if (c < 0) break;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event cev{};
                    cev.events = EPOLLIN;
                    cev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                    handshaking[c];
                }
                continue;
            }
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                drop(fd);
                continue;
            }
            if (r < 0) continue;
            auto h = handshaking.find(fd);
            if (h == handshaking.end()) {
                // A client's frames are read and ignored, but a close frame
                // gets its answer, so that clients see a clean close.
                if ((std::uint8_t(buf[0]) & 0x0f) == 0x8) {
                    const char bye[] = {char(0x88), 2, char(0x03), char(0xE8)};
                    send(fd, bye, sizeof bye, MSG_NOSIGNAL);
                }
                continue;
            }
            h->second.append(buf, std::size_t(r));
            std::size_t end = h->second.find("\r\n\r\n");
            if (end == std::string::npos) {
                if (h->second.size() > 8192) drop(fd);
                continue;
            }
            std::string key;
            std::size_t k0 = h->second.find("Sec-WebSocket-Key:");
            if (k0 == std::string::npos) k0 = h->second.find("sec-websocket-key:");
            if (k0 != std::string::npos) {
                std::size_t v = k0 + 18, eol = h->second.find("\r\n", v);
                key = h->second.substr(v, eol - v);
                while (!key.empty() && key.front() == ' ') key.erase(0, 1);
                while (!key.empty() && key.back() == ' ') key.pop_back();
            }
            std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " +
                               metrics_agent::detail::websocket_accept(key) + "\r\n\r\n";
            handshaking.erase(h);
            if (send(fd, resp.data(), resp.size(), MSG_NOSIGNAL) != ssize_t(resp.size())) {
                drop(fd);
                continue;
            }
            where[fd] = clients.size();
            clients.push_back(fd);
        }
    }
    std::fprintf(stderr, "floor_server: %zu clients at exit, %llu short sends, %llu failed sends\n", clients.size(),
                 static_cast<unsigned long long>(short_sends.load()),
                 static_cast<unsigned long long>(failed_sends.load()));
    // Clients get a close frame (1001) as from the agent.
    const char bye[] = {char(0x88), 2, char(0x03), char(0xE9)};
    for (int fd : clients) {
        send(fd, bye, sizeof bye, MSG_NOSIGNAL);
        close(fd);
    }
    return 0;
}
