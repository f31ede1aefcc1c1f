// Shared by the wharf CLI's source files: global options, output helpers and
// the subcommand groups that live in their own file.
#pragma once

#include <wharf/client.h>

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>

#include "../common/json.h"

namespace wharf_cli {

using wharf::tools::json_writer;

struct globals {
  std::string broker = "127.0.0.1:7700";
  bool json = false;
  double timeout_s = 10;
  bool timeout_given = false;
};

/// Print "wharf: <error>" on stderr; return the exit code (1 broker/network, 2 usage).
int fail(const wharf::error& e);
int usage(const std::string& msg);
std::string iso_time_us(uint64_t us);
wharf::result<std::unique_ptr<wharf::client>> connect(const globals& g);
void print_json(const json_writer& w);
void group_json(json_writer& w, const wharf::group_info& g);
void print_group(const wharf::group_info& g);

/// Wraps a subcommand body that needs a connection (a failed connect sets rc).
using client_body = std::function<void(wharf::client&)>;
using with_client_fn = std::function<std::function<void()>(client_body)>;

/// `wharf webhooks ...` (webhooks.cc).
void add_webhook_commands(CLI::App& app, globals& g, int& rc, const with_client_fn& with_client);

}  // namespace wharf_cli
