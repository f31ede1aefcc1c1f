// Broker logging: one line per notable event on stderr,
// "2026-11-23T21:04:05.123Z INFO  message". Safe from any thread (one write(2)
// per line). The level is set once at start-up from `log_level`.
#pragma once

#include <string_view>

namespace wharf {

enum class log_level { debug = 0, info = 1, warn = 2, error = 3 };

void set_log_level(log_level level);
bool parse_log_level(std::string_view text, log_level& out);
bool log_enabled(log_level level);
void log_write(log_level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) \
  (::wharf::log_enabled(::wharf::log_level::debug) ? ::wharf::log_write(::wharf::log_level::debug, __VA_ARGS__) : void())
#define log_info(...) \
  (::wharf::log_enabled(::wharf::log_level::info) ? ::wharf::log_write(::wharf::log_level::info, __VA_ARGS__) : void())
#define log_warn(...) \
  (::wharf::log_enabled(::wharf::log_level::warn) ? ::wharf::log_write(::wharf::log_level::warn, __VA_ARGS__) : void())
#define log_error(...) ::wharf::log_write(::wharf::log_level::error, __VA_ARGS__)

}  // namespace wharf
