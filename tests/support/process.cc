#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>

#ifndef WHARF_BIN_DIR
#error "WHARF_BIN_DIR must be defined"
#endif

namespace wharf::test {
namespace {

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

/// Waits for `pid` to exit within `timeout`; returns the raw status or -1.
int wait_pid(pid_t pid, std::chrono::milliseconds timeout) {
  // A pidfd turns "child exited" into a pollable event.
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd >= 0) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(timeout.count()));
    close(fd);
    if (r <= 0) return -1;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;  // without pidfd: wait without a limit
  return status;
}

}  // namespace

std::string bin_path(const std::string& name) { return std::string(WHARF_BIN_DIR) + "/" + name; }

temp_dir::temp_dir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wharf-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::permissions(path_, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
  std::filesystem::remove_all(path_, ec);
}

broker_process::broker_process(std::string data_dir, std::vector<std::string> args)
    : data_dir_(std::move(data_dir)), args_(std::move(args)) {}

broker_process::~broker_process() {
  if (pid_ > 0) stop(SIGKILL);
  if (reader_.joinable()) reader_.join();
}

bool broker_process::start(std::chrono::milliseconds timeout) {
  if (pid_ > 0) return true;
  if (reader_.joinable()) reader_.join();
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return false;
  std::vector<std::string> argv_s{bin_path("wharfd"),
                                  "--data-dir",
                                  data_dir_,
                                  "--listen",
                                  "127.0.0.1:" + std::to_string(port_),
                                  "--http-listen",
                                  http_ ? "127.0.0.1:" + std::to_string(http_port_) : ""};
  argv_s.insert(argv_s.end(), args_.begin(), args_.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  size_t log_start;
  {
    std::lock_guard lk(mu_);
    log_start = log_.size();
    eof_ = false;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    if (getppid() != parent) _exit(127);
    dup2(pipefd[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(pipefd[1]);
  pid_ = pid;
  int rfd = pipefd[0];
  reader_ = std::thread([this, rfd] {
    char buf[4096];
    while (true) {
      ssize_t n = read(rfd, buf, sizeof buf);
      if (n <= 0) break;
      std::lock_guard lk(mu_);
      log_.append(buf, static_cast<size_t>(n));
      cv_.notify_all();
    }
    close(rfd);
    std::lock_guard lk(mu_);
    eof_ = true;
    cv_.notify_all();
  });
  std::unique_lock lk(mu_);
  // "INFO  listening on H:P" (the protocol listener) and "http listening on H:P".
  auto find_port = [&](const std::string& marker, bool skip_http) -> std::optional<uint16_t> {
    for (size_t at = log_.find(marker, log_start); at != std::string::npos;
         at = log_.find(marker, at + 1)) {
      if (skip_http && at >= 5 && log_.compare(at - 5, 5, "http ") == 0) continue;
      return static_cast<uint16_t>(std::stoi(log_.substr(at + marker.size())));
    }
    return std::nullopt;
  };
  const std::string tcp_marker = "listening on 127.0.0.1:",
                    http_marker = "http listening on 127.0.0.1:";
  auto ready = [&] {
    return find_port(tcp_marker, true) && (!http_ || find_port(http_marker, false));
  };
  bool up = cv_.wait_for(lk, timeout, [&] { return eof_ || ready(); });
  if (!up || !ready()) {
    lk.unlock();
    stop(SIGKILL);
    return false;
  }
  port_ = *find_port(tcp_marker, true);
  if (http_) http_port_ = *find_port(http_marker, false);
  return true;
}

void broker_process::reap(int status) {
  exit_code_ = decode_status(status);
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
}

int broker_process::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return exit_code_;
  ::kill(pid_, sig);
  if (sig == SIGSTOP) return 0;
  int status = wait_pid(pid_, timeout);
  if (status == -1) return -1;
  reap(status);
  return exit_code_;
}

int broker_process::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return exit_code_;
  int status = wait_pid(pid_, timeout);
  if (status == -1) return -1;
  reap(status);
  return exit_code_;
}

void broker_process::pause() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void broker_process::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

std::string broker_process::log() const {
  std::lock_guard lk(mu_);
  return log_;
}

bool broker_process::wait_for_log(const std::string& text, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return log_.find(text) != std::string::npos; });
}

cli_result run_tool(const std::string& binary, const std::vector<std::string>& args, const std::string& input,
                    std::chrono::seconds timeout) {
  return run_program(bin_path(binary), args, input, timeout);
}

cli_result run_program(const std::string& path, const std::vector<std::string>& args,
                       const std::string& input, std::chrono::seconds timeout) {
  temp_dir io;
  std::string in_path = io.file("stdin"), out_path = io.file("stdout"), err_path = io.file("stderr");
  {
    std::ofstream(in_path, std::ios::binary) << input;
  }
  std::vector<std::string> argv_s{path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    execv(argv[0], argv.data());
    _exit(127);
  }
  cli_result r;
  int status = wait_pid(pid, timeout);
  if (status == -1) {
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    r.exit_code = -1;
  } else {
    r.exit_code = decode_status(status);
  }
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

cli_result run_cli(const std::string& broker, std::vector<std::string> args, const std::string& input,
                   std::chrono::seconds timeout) {
  args.insert(args.begin(), {"--broker", broker});
  return run_tool("wharf", args, input, timeout);
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

}  // namespace wharf::test
