// protocol_fuzzer: libFuzzer target for everything wharfd does with bytes
// from the network: framing (frame_reader, max_frame_bytes) -> the
// flatbuffers Verifier -> handshake -> dispatch_frame() -> every handler, the
// writer thread, groups and subscriptions, against a real in-process broker.
//
// One input = one TCP connection to that broker, played by conversation.h
// (which also says what an input's flags byte means and what counts as a
// finding). Crashes, ASan/UBSan reports and leaks are findings too: the
// broker runs in this process.
//
// The broker (LLVMFuzzerInitialize) runs on its own thread, listening on
// 127.0.0.1:0 with a data dir under $TMPDIR and the settings of
// fuzz::broker_flags(). Its state (topics, groups, stored records) persists
// from one input to the next, which lets inputs reach existing topics and
// groups; a crash may therefore need inputs before it, so a reproducer is
// best minimised into one self-contained input (see docs). Every
// WHARF_FUZZ_RECYCLE inputs (default 20000) the broker is shut down cleanly
// and restarted on the same data dir (recovery is fuzzed too), or on a fresh
// one once the store is above 64 MiB, which bounds the state and its cost.
// At exit the broker is shut down and the data dir removed, so
// LeakSanitizer sees only real leaks.
//
// Environment: WHARF_FUZZ_LOG=debug|info|warn|error (broker log level,
// default error), WHARF_FUZZ_CLOSE_TIMEOUT_MS (default 10000: a broker that
// has not closed a connection this long after it opened is a hang),
// WHARF_FUZZ_RECYCLE. Building and running: docs/RELIABILITY.md.
#include <sanitizer/lsan_interface.h>
#include <signal.h>
#include <sys/stat.h>
#include <uv.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "broker.h"
#include "config.h"
#include "conversation.h"
#include "log.h"

namespace {

namespace fs = std::filesystem;

constexpr uintmax_t kFreshStoreBytes = 64u << 20;  // recycle onto a new data dir above this

/// Reports a finding (or a broken harness) and aborts, so libFuzzer keeps the input.
[[noreturn]] __attribute__((format(printf, 1, 2))) void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "protocol_fuzzer: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  std::abort();
}

/// The in-process broker and its thread.
struct fuzz_broker {
  std::unique_ptr<wharf::broker> broker;
  std::thread thread;
  std::future<int> exit_code;  // broker::run()'s result once its loop ends
  uv_async_t stop;             // initialised on the loop thread; asks for shutdown
  bool stop_open = false;      // loop thread: `stop` is initialised and not closed
  uint16_t port = 0;
};

std::unique_ptr<fuzz_broker> g_broker;
fs::path g_data_dir;
std::chrono::milliseconds g_close_timeout{10000};
uint64_t g_recycle_every = 20000;
uint64_t g_inputs = 0;

void on_stop(uv_async_t* a) {
  auto fb = static_cast<fuzz_broker*>(a->data);
  uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
  fb->stop_open = false;
  fb->broker->shutdown();
}

fs::path new_data_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/wharf-fuzz-XXXXXX";
  if (!mkdtemp(pattern.data())) die("cannot create a data dir: %s", std::strerror(errno));
  return pattern;
}

void start_broker() {
  std::vector<std::string> args = wharf::fuzz::broker_flags();
  args.insert(args.end(), {"--listen", "127.0.0.1:0", "--data-dir", g_data_dir.string()});
  const char* level = std::getenv("WHARF_FUZZ_LOG");
  args.insert(args.end(), {"--log-level", level && *level ? level : "error"});
  wharf::broker_config c;
  if (wharf::parse_broker_config(args, c) >= 0) die("the fuzz broker's settings do not parse");
  wharf::set_log_level(c.level);

  auto fb = std::make_unique<fuzz_broker>();
  fb->broker = std::make_unique<wharf::broker>(c);
  std::promise<uint16_t> listening;
  fuzz_broker* raw = fb.get();
  fb->broker->on_listening([raw, &listening](uint16_t port) {
    uv_async_init(raw->broker->loop(), &raw->stop, &on_stop);
    raw->stop.data = raw;
    // Not a reason to keep the loop running: after a shutdown that SIGINT or
    // SIGTERM started, the loop must still end.
    uv_unref(reinterpret_cast<uv_handle_t*>(&raw->stop));
    raw->stop_open = true;
    listening.set_value(port);
  });
  std::promise<int> done;
  fb->exit_code = done.get_future();
  fb->thread = std::thread([raw, done = std::move(done)]() mutable {
    int rc = raw->broker->run();
    if (raw->stop_open) {
      // A signal shut the broker down and its loop ended with `stop` still
      // open, so uv_loop_close() failed: close it now, or the loop's
      // internals leak (LeakSanitizer found this).
      uv_close(reinterpret_cast<uv_handle_t*>(&raw->stop), nullptr);
      uv_run(raw->broker->loop(), UV_RUN_NOWAIT);
      uv_loop_close(raw->broker->loop());
    }
    done.set_value(rc);
  });
  auto port = listening.get_future();
  while (port.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    if (fb->exit_code.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      fb->thread.join();
      die("the broker failed to start (see its log above)");
    }
  }
  fb->port = port.get();
  g_broker = std::move(fb);
}

/// Shuts the broker down cleanly (as SIGTERM would) and waits for its thread.
void stop_broker() {
  std::unique_ptr<fuzz_broker> fb = std::move(g_broker);
  if (!fb) return;
  if (fb->exit_code.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    uv_async_send(&fb->stop);
    if (fb->exit_code.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      die("hang: the broker did not shut down within 30 s");
    }
  }
  fb->thread.join();
  int rc = fb->exit_code.get();
  fb->broker.reset();
  if (rc != 0) die("the broker exited with code %d", rc);
}

uintmax_t store_bytes() {
  std::error_code ec;
  uintmax_t total = 0;
  for (auto& e : fs::directory_iterator(g_data_dir, ec)) {
    // LMDB's data file is sparse: count what is allocated, not its length.
    struct stat st {};
    if (::stat(e.path().c_str(), &st) == 0) total += static_cast<uintmax_t>(st.st_blocks) * 512;
  }
  return total;
}

void remove_data_dir() {
  std::error_code ec;
  if (!g_data_dir.empty()) fs::remove_all(g_data_dir, ec);
}

void recycle_broker() {
  stop_broker();
  if (store_bytes() > kFreshStoreBytes) {
    remove_data_dir();
    g_data_dir = new_data_dir();
  }
  start_broker();
}

void at_exit() {
  stop_broker();
  remove_data_dir();
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  signal(SIGPIPE, SIG_IGN);
  g_close_timeout = std::chrono::milliseconds(env_u64("WHARF_FUZZ_CLOSE_TIMEOUT_MS", 10000));
  g_recycle_every = env_u64("WHARF_FUZZ_RECYCLE", 20000);
  g_data_dir = new_data_dir();
  start_broker();
  std::atexit(at_exit);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!g_broker) return 0;
  if (g_recycle_every && ++g_inputs % g_recycle_every == 0) recycle_broker();
  auto out = wharf::fuzz::play(g_broker->port, {data, size}, g_close_timeout);
  if (!out.connected) {
    // The broker stops listening only when it shuts down: SIGINT or SIGTERM
    // reached its signal handlers (libuv's replace libFuzzer's). Stop as
    // libFuzzer does on SIGINT, after the clean shutdown and a leak check:
    // exit() from inside the target would count as a crash.
    if (g_broker->exit_code.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
      die("cannot connect to the broker, and it has not shut down");
    }
    std::fprintf(stderr, "protocol_fuzzer: the broker shut down (SIGINT/SIGTERM); stopping\n");
    at_exit();
    std::_Exit(__lsan_do_recoverable_leak_check() ? 1 : 0);
  }
  if (!out.finding.empty()) die("%s", out.finding.c_str());
  return 0;
}
