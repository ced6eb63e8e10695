// What every fan-out server of the benchmark sends (bench/floor_server.cpp,
// bench/peers/*.cpp): a message shaped like the flat stream's, with fixed
// figures and the wall-clock time it is built, so that load_client measures
// each one's delay from its own timestamp as it does the agent's.
#ifndef METRICS_AGENT_BENCH_TICK_MESSAGE_HPP
#define METRICS_AGENT_BENCH_TICK_MESSAGE_HPP

#include <sys/resource.h>
#include <time.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace bench {

inline std::int64_t wall_us() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// {"cpu": 1.5, "memory": 42.25, "disk": 22.45, "timestamp": "YYYY-MM-DDTHH:MM:SS.ffffff"} (UTC)
inline std::string message_at(std::int64_t us) {
    time_t secs = time_t(us / 1000000);
    tm t;
    gmtime_r(&secs, &t);
    char json[160];
    int n = std::snprintf(json, sizeof json,
                          "{\"cpu\": 1.5, \"memory\": 42.25, \"disk\": 22.45, \"timestamp\": "
                          "\"%04d-%02d-%02dT%02d:%02d:%02d.%06d\"}",
                          t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                          int(us % 1000000));
    return std::string(json, std::size_t(n));
}

// The open-file soft limit raised to the hard limit: the bench holds 19,500 clients.
inline void raise_open_file_limit() {
    rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

// The --listen ADDR:PORT of a peer's command line (default 127.0.0.1:54112);
// the other flags bench/run.sh passes (--max-clients N, ...) are skipped.
inline std::string listen_argument(int argc, char** argv) {
    std::string listen = "127.0.0.1:54112";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--listen" && i + 1 < argc) listen = argv[++i];
        else if (a.rfind("--", 0) == 0 && i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) ++i;
    }
    return listen;
}

}  // namespace bench

#endif  // METRICS_AGENT_BENCH_TICK_MESSAGE_HPP
