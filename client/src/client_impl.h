// Private: the machinery behind wharf::client.
//
// One I/O thread per client runs a libuv loop that owns the connection, the
// request table and the write queue. Other threads talk to it only through
// post() (a command queue + uv_async_send, which coalesces) and through the
// publish accumulator (pub_mu_), which producers fill and the I/O thread
// drains. Each subscription has a worker thread that runs the user's
// handler; acks and credits it produces travel back through post_ack().
//
// Publishing: records are encoded straight into a per-topic open batch (a
// flatbuffers builder). The I/O thread seals a batch into a Publish frame
// when it has a free in-flight slot (kMaxInflightBatches per connection), so
// batches are tiny when the broker keeps up and grow under load, the same
// self-clocking Kafka's producer gets from max.in.flight.
#pragma once

#include <uv.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "buffer_pool.h"
#include "wharf/client.h"
#include "wire.h"

namespace wharf {
namespace detail {

using steady = std::chrono::steady_clock;

/// One frame received from the broker, copied out of the read buffer and
/// kept alive by the messages (or the caller) that point into it.
struct delivery {
  std::vector<uint64_t> storage;  // 8-byte aligned copy of the frame, size prefix included
  size_t size = 0;
  const wire::Frame* frame() const {
    return wire::GetSizePrefixedFrame(reinterpret_cast<const uint8_t*>(storage.data()));
  }
  static std::shared_ptr<delivery> copy_of(std::span<const uint8_t> bytes);
};
using reply_ptr = std::shared_ptr<const delivery>;

enum class settle_kind : uint8_t { ack, nack, release };

/// A subscription's state, shared by its handle, its worker thread, the
/// I/O thread and every message it delivered (for ack/nack).
struct sub_state : std::enable_shared_from_this<sub_state> {
  uint64_t local_id = 0;         // stable for the subscription's life
  std::string topic, group;      // group empty = ephemeral
  subscribe_options options;
  message_handler handler;

  // I/O thread only.
  uint64_t broker_id = 0;        // the broker's id for the current connection, 0 if none
  bool subscribing = false;      // a Subscribe request is on its way
  std::vector<std::function<void(const error*)>> subscribe_waiters;
  uint64_t resume_offset = 0;    // ephemeral: where to continue after a reconnect
  bool have_resume = false;
  bool ended = false;
  error end_error;               // why it ended

  // Worker.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<message> queue;     // guarded by mu
  bool stopping = false;         // guarded by mu
  std::atomic<bool> stop_flag{false};  // stopping, readable without mu
  std::unordered_set<uint64_t> held;  // guarded by mu: handed to the handler, not settled (groups)
  std::thread worker;
  std::atomic<uint64_t> delivered{0};

  std::mutex owner_mu;
  client::impl* owner = nullptr;  // guarded by owner_mu; null once the client is gone

  void run_worker();
  void stop_worker();
  /// Sends an ack/nack/release for a message handed to the application
  /// (`untracked`: one the worker settles itself, not in `held`).
  void settle(uint64_t offset, settle_kind kind, uint32_t delay_ms, bool untracked = false);
};

}  // namespace detail

class client::impl {
 public:
  explicit impl(client_options options);
  ~impl();

  /// Starts the I/O thread and waits for the first connection.
  result<void> start();
  void close(std::chrono::milliseconds timeout);

  // Requests. `fbb` holds a finished frame with request id `rid`.
  result<detail::reply_ptr> roundtrip(flatbuffers::FlatBufferBuilder& fbb, uint64_t rid);
  uint64_t next_request_id() { return next_rid_.fetch_add(1, std::memory_order_relaxed); }

  // Publishing.
  void publish_async(std::string_view topic, const record& r, publish_callback done, bool urgent);
  result<void> flush(std::chrono::milliseconds timeout);

  // Subscriptions.
  result<std::shared_ptr<detail::sub_state>> subscribe(std::string_view topic, std::string_view group,
                                                       message_handler handler, subscribe_options options);
  void unsubscribe(const std::shared_ptr<detail::sub_state>& s);
  void post_settle(uint64_t local_id, uint64_t offset, detail::settle_kind kind, uint32_t delay_ms);
  void post_settles(uint64_t local_id, const std::vector<uint64_t>& offsets, detail::settle_kind kind);
  void post_credit(uint64_t local_id, uint32_t records);

  bool connected() const { return connected_.load(); }
  const client_options& options() const { return options_; }
  uint32_t max_message_bytes() const { return max_message_bytes_.load(); }

 private:
  /// A request's answer: `err` set when it failed locally (timeout,
  /// disconnect); otherwise `frame` is the verified reply (possibly an
  /// Error frame) and `bytes` its encoding, both valid during the call only.
  using reply_fn = std::function<void(const error* err, const wire::Frame* frame,
                                      std::span<const uint8_t> bytes)>;
  struct request {
    uint64_t rid = 0;
    flatbuffers::DetachedBuffer frame;
    reply_fn on_reply;
    detail::steady::time_point deadline;
  };
  struct open_batch {
    explicit open_batch(size_t capacity) : fbb(capacity, &detail::buffer_pool::instance()) {}
    flatbuffers::FlatBufferBuilder fbb;
    std::vector<flatbuffers::Offset<wire::Record>> records;
    std::vector<publish_callback> callbacks;
    size_t bytes = 0;  // record bytes (key + headers + payload)
    detail::steady::time_point started;
  };
  struct sealed_batch {
    std::string topic;
    flatbuffers::DetachedBuffer data;  // finished RecordBatch
    std::vector<publish_callback> callbacks;
    size_t bytes = 0;
    detail::steady::time_point started;
  };
  struct settle_item {
    uint64_t local_id, offset;
    detail::settle_kind kind;
    uint32_t delay_ms;
  };
  struct write_req;

  // Cross-thread.
  void post(std::function<void()> fn);
  void wake_io();

  // I/O thread.
  void run_loop();
  void connect_now();
  void on_connected(int status);
  void on_frame(std::span<const uint8_t> bytes);
  void on_hello_ok(const wire::HelloOk& ok);
  void on_deliver(std::span<const uint8_t> bytes, const wire::Deliver& d);
  void on_subscription_ended(const wire::SubscriptionEnded& e);
  void drop_connection(const std::string& why);
  void schedule_reconnect();
  void send_frame(flatbuffers::DetachedBuffer frame);
  void flush_writes();
  void enqueue_request(request r);
  void pump_publishes();
  void send_batch(sealed_batch b);
  void send_settles();
  /// Subscribes `s` on the current connection unless it is (being) subscribed;
  /// `done` gets null on success or the error.
  void ensure_subscribed(const std::shared_ptr<detail::sub_state>& s, std::function<void(const error*)> done);
  void housekeeping();
  void fail_all(errc code, const std::string& why);
  void begin_close();
  void close_tcp();
  void close_handles();
  void end_subscription(const std::shared_ptr<detail::sub_state>& s, const error& why);
  sealed_batch seal(const std::string& topic, open_batch& b);  // pub_mu_ held

  static void on_async(uv_async_t* h);
  static void on_timer(uv_timer_t* t);
  static void on_reconnect_timer(uv_timer_t* t);
  static void on_linger_timer(uv_timer_t* t);
  static void on_connect_cb(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);

  client_options options_;
  std::string host_;
  uint16_t port_ = 0;

  std::thread io_;
  std::thread::id io_id_;
  uv_loop_t loop_;
  uv_async_t async_;
  uv_timer_t timer_, reconnect_timer_, linger_timer_;

  // Connection (I/O thread).
  enum class state { disconnected, connecting, handshaking, ready, closed };
  state state_ = state::disconnected;
  uv_tcp_t* tcp_ = nullptr;
  std::unique_ptr<wire::frame_reader> reader_;
  std::vector<flatbuffers::DetachedBuffer> write_queue_;
  bool write_in_flight_ = false;
  uint64_t generation_ = 0;     // bumped per connection; stale write callbacks compare it
  detail::steady::time_point connect_started_;
  uint64_t hello_rid_ = 0;
  uint32_t backoff_ms_ = 0;
  std::string last_error_;
  std::atomic<bool> connected_{false};
  std::atomic<uint32_t> max_message_bytes_{wire::kDefaultMaxMessageBytes};
  std::atomic<uint32_t> max_frame_bytes_{wire::kDefaultMaxFrameBytes};  // announced by the broker
  uint32_t max_frame_limit() const { return max_frame_bytes_ * 2 + (1u << 20); }

  // First connection.
  std::mutex start_mu_;
  std::condition_variable start_cv_;
  bool start_done_ = false;     // guarded by start_mu_
  error start_error_;           // guarded by start_mu_

  // Commands posted to the I/O thread.
  std::mutex cmd_mu_;
  std::vector<std::function<void()>> cmds_;
  std::atomic<bool> wake_pending_{false};

  // Requests (I/O thread).
  std::atomic<uint64_t> next_rid_{1};
  std::deque<request> unsent_;
  std::unordered_map<uint64_t, request> inflight_;
  uint32_t inflight_batches_ = 0;

  // Publishing (pub_mu_).
  std::mutex pub_mu_;
  std::condition_variable pub_cv_;
  std::map<std::string, open_batch, std::less<>> open_;
  std::deque<sealed_batch> sealed_;
  size_t pending_bytes_ = 0;     // accepted by publish_async, not completed
  size_t pending_records_ = 0;
  bool flush_requested_ = false;
  bool closing_ = false;

  // Acks, nacks and credits (settle_mu_).
  std::mutex settle_mu_;
  std::vector<settle_item> settles_;
  std::unordered_map<uint64_t, uint32_t> credits_;

  // Subscriptions.
  std::mutex subs_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<detail::sub_state>> subs_;  // by local id
  std::unordered_map<uint64_t, std::shared_ptr<detail::sub_state>> by_broker_id_;  // I/O thread
  std::atomic<uint64_t> next_local_id_{1};
};

error error_from_wire(const wire::Error& e);

}  // namespace wharf
