// Test support: run real wharfd and wharf processes.
//
// broker_process starts build/bin/wharfd on 127.0.0.1 (an ephemeral port the
// first time, the same port on restart) with a data dir the test owns, waits
// for its "listening on" log line (an event, not a sleep), keeps its stderr,
// and kills it when the test ends. The HTTP listener is off (its default is a
// fixed port, which tests running in parallel would fight over) unless the
// test calls enable_http(): then it too listens on an ephemeral port, learnt
// from the "http listening on" line. Only processes the test started are ever
// signalled, by PID.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wharf::test {

/// Path of a built binary ("wharfd", "wharf", "wharf-bench").
std::string bin_path(const std::string& name);

/// A fresh directory under $TMPDIR, removed with its contents on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class broker_process {
 public:
  /// `args` are extra wharfd flags, e.g. {"--fsync", "never"}.
  explicit broker_process(std::string data_dir, std::vector<std::string> args = {});
  ~broker_process();
  broker_process(const broker_process&) = delete;
  broker_process& operator=(const broker_process&) = delete;

  /// Starts wharfd and waits until it listens. False if it exited or did not
  /// come up within `timeout` (see log()).
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// Sends `sig` and waits for the exit; returns the exit code (128+signal
  /// when killed by a signal), or -1 if it did not exit within `timeout`.
  int stop(int sig = 15, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  void kill9() { stop(9); }
  /// SIGSTOP / SIGCONT.
  void pause();
  void resume();
  /// Waits for an exit the test did not ask for (e.g. a refused start).
  int wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& data_dir() const { return data_dir_; }
  void set_args(std::vector<std::string> args) { args_ = std::move(args); }
  /// Before start(): also listen for HTTP on 127.0.0.1 (port 0, then the same port on restart).
  void enable_http() { http_ = true; }
  uint16_t http_port() const { return http_port_; }
  std::string http_address() const { return "127.0.0.1:" + std::to_string(http_port_); }
  /// Everything the broker wrote to stderr so far (all runs).
  std::string log() const;
  /// Waits until the log contains `text` (from any run).
  bool wait_for_log(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  void reap(int status);

  std::string data_dir_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  bool http_ = false;
  uint16_t http_port_ = 0;
  int exit_code_ = -1;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;
  bool eof_ = false;
};

struct cli_result {
  int exit_code = -1;  // 128+signal if killed; -1 if it timed out
  std::string out, err;
};

/// Runs build/bin/<binary> with `args`, feeding `input` on stdin.
cli_result run_tool(const std::string& binary, const std::vector<std::string>& args,
                    const std::string& input = "", std::chrono::seconds timeout = std::chrono::seconds(120));

/// Runs any program (an absolute path, e.g. /usr/bin/curl) the same way.
cli_result run_program(const std::string& path, const std::vector<std::string>& args,
                       const std::string& input = "",
                       std::chrono::seconds timeout = std::chrono::seconds(120));

/// Runs the `wharf` CLI against `broker` ("--broker" is added first).
cli_result run_cli(const std::string& broker, std::vector<std::string> args, const std::string& input = "",
                   std::chrono::seconds timeout = std::chrono::seconds(120));

/// Splits text into lines (without the newlines).
std::vector<std::string> lines(const std::string& text);

}  // namespace wharf::test
