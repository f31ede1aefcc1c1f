#include "conversation.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

namespace wharf::fuzz {

std::vector<std::string> broker_flags() {
  return {"--fsync=never",
          "--map-size=256MiB",
          "--max-message-bytes=1KiB",
          "--max-frame-bytes=64KiB",
          "--cache-bytes=64KiB",
          "--retention-check-ms=100",
          "--handshake-timeout-ms=2000",
          "--frame-timeout-ms=2000",
          "--write-timeout-ms=5000",
          "--webhook-loopback-only"};  // mutated URLs must not resolve or call other hosts
}

std::optional<std::vector<uint8_t>> parse_hex(std::string_view text) {
  std::vector<uint8_t> out;
  int high = -1;  // first digit of a pair, -1 between pairs
  bool comment = false;
  for (char ch : text) {
    if (comment) {
      comment = ch != '\n';
      continue;
    }
    if (ch == '#') {
      comment = true;
      continue;
    }
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') continue;
    int v = ch >= '0' && ch <= '9'   ? ch - '0'
            : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
            : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                     : -1;
    if (v < 0) return std::nullopt;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) return std::nullopt;
  return out;
}

namespace {

using clock_type = std::chrono::steady_clock;
using wire::Body;

constexpr size_t kMaxTrackedDeliveries = 4096;  // offsets remembered for mapping acks

/// Kinds the broker answers (with the frame's request_id) while the
/// connection stays open; everything else gets no answer or closes it.
bool answered(Body kind) {
  switch (kind) {
    case Body::Hello:
    case Body::CreateTopic:
    case Body::DeleteTopic:
    case Body::ListTopics:
    case Body::DescribeTopic:
    case Body::Publish:
    case Body::Subscribe:
    case Body::Unsubscribe:
    case Body::CreateGroup:
    case Body::ListGroups:
    case Body::DescribeGroup:
    case Body::ResetGroup:
    case Body::DeleteGroup:
    case Body::GetStats:
    case Body::AddWebhook:
    case Body::ListWebhooks:
    case Body::DescribeWebhook:
    case Body::PauseWebhook:
    case Body::RemoveWebhook:
      return true;
    default:
      return false;
  }
}

/// A copy of a frame whose start is 8-byte aligned (as the broker's
/// frame_reader gives frames), so the Verifier accepts what the broker would.
struct aligned_frame {
  std::vector<uint64_t> words;
  size_t size = 0;
  explicit aligned_frame(std::span<const uint8_t> b) : words(b.size() / 8 + 1), size(b.size()) {
    std::memcpy(words.data(), b.data(), b.size());
  }
  std::span<const uint8_t> span() const {
    return {reinterpret_cast<const uint8_t*>(words.data()), size};
  }
};

class connection {
 public:
  connection(uint16_t port, clock_type::time_point deadline, outcome& out)
      : deadline_(deadline), out_(out), replies_(1u << 30) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS)
      return;
    pollfd p{fd_, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (::poll(&p, 1, 10000) != 1 || getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
        err != 0)
      return;
    out_.connected = true;
    int one = 1;  // frame-by-frame sends must not wait for delayed ACKs
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~connection() {
    if (fd_ < 0) return;
    // A reset: no TIME_WAIT (long runs would exhaust ports), and with kReset
    // the way the conversation ends.
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
  }

  bool done() const { return eof_ || timed_out_; }

  /// Sends `bytes` (in pieces of `piece` bytes, 0 = at once), reading
  /// replies meanwhile, until sent or the connection is closed.
  void send(std::span<const uint8_t> bytes, size_t piece) {
    while (!bytes.empty() && !write_closed_ && !done()) {
      size_t n = piece ? std::min(piece, bytes.size()) : bytes.size();
      ssize_t w = ::send(fd_, bytes.data(), n, MSG_NOSIGNAL);
      if (w > 0) {
        bytes = bytes.subspan(static_cast<size_t>(w));
        if (piece) pump(0);
      } else if (w < 0 && errno == EINTR) {
        continue;
      } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pump(POLLOUT);
      } else {
        write_closed_ = true;  // EPIPE/ECONNRESET: the broker closed it
      }
    }
  }

  /// Reads until a frame at index >= `from` answers `request_id`, or the
  /// connection ends.
  void await_answer(size_t from, uint64_t request_id) {
    while (!done()) {
      for (; from < out_.frames.size(); ++from) {
        if (out_.frames[from].request_id == request_id) return;
      }
      pump(POLLIN);
    }
  }

  /// Shuts down the write side and reads until the broker closes.
  void finish() {
    ::shutdown(fd_, SHUT_WR);
    while (!done()) pump(POLLIN);
  }

  bool timed_out() const { return timed_out_; }
  const std::vector<uint64_t>& subscriptions() const { return subscriptions_; }
  const std::vector<uint64_t>& delivered() const { return delivered_; }

 private:
  /// Waits (until the deadline) for `events` or input; reads what there is.
  void pump(short events) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - clock_type::now());
    if (left.count() <= 0) {
      timed_out_ = true;
      return;
    }
    pollfd p{fd_, static_cast<short>(events | POLLIN), 0};
    int timeout = events == 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 100));
    if (::poll(&p, 1, timeout) < 0) return;
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) return;
    for (;;) {
      auto space = replies_.prepare();
      ssize_t r = ::recv(fd_, space.data(), space.size(), 0);
      if (r > 0) {
        replies_.commit(static_cast<size_t>(r));
        take_replies();
        if (!out_.finding.empty()) eof_ = true;  // nothing more to learn from it
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      eof_ = true;  // closed (0) or reset
      return;
    }
  }

  void take_replies() {
    std::span<const uint8_t> bytes;
    while (out_.finding.empty()) {
      auto st = replies_.next(bytes);
      if (st == wire::frame_reader::status::need_more) return;
      if (st == wire::frame_reader::status::too_large) {
        out_.finding = "the broker sent a frame above 1 GiB";
        return;
      }
      const wire::Frame* f = wire::verify_frame(bytes);
      if (!f) {
        out_.finding = "the broker sent a frame that fails the Verifier (" +
                       std::to_string(bytes.size()) + " bytes)";
        return;
      }
      received r{f->body_type(), f->request_id()};
      if (auto e = f->body_as_Error()) r.error = e->code();
      if (auto e = f->body_as_SubscriptionEnded()) r.error = e->code();
      if (auto ok = f->body_as_SubscribeOk()) subscriptions_.push_back(ok->subscription_id());
      if (auto d = f->body_as_Deliver()) note_delivery(*d);
      out_.frames.push_back(r);
      replies_.consume();
    }
  }

  void note_delivery(const wire::Deliver& d) {
    for (auto b : *d.batches()) {
      uint64_t base = b->base_offset();
      uint32_t n = b->indexes() ? b->indexes()->size() : b->count();
      out_.delivered_records += n;
      for (uint32_t i = 0; i < n && delivered_.size() < kMaxTrackedDeliveries; ++i) {
        delivered_.push_back(base +
                             (b->indexes() ? b->indexes()->Get(i) : b->first() + uint64_t{i}));
      }
    }
  }

  int fd_ = -1;
  clock_type::time_point deadline_;
  outcome& out_;
  wire::frame_reader replies_;
  bool eof_ = false;
  bool timed_out_ = false;
  bool write_closed_ = false;
  std::vector<uint64_t> subscriptions_;  // from SubscribeOk, in order
  std::vector<uint64_t> delivered_;      // offsets from Deliver frames, in order
};

/// Rewrites subscription ids and offsets of a verified frame in place (see
/// kInteractive). Only fields present in the buffer can be rewritten.
void map_references(const wire::Frame& f, const connection& c) {
  using flatbuffers::Table;
  using offsets_t = flatbuffers::Vector<uint64_t>;
  const Table* body = nullptr;
  const offsets_t* offsets = nullptr;
  if (auto a = f.body_as_Ack()) body = reinterpret_cast<const Table*>(a), offsets = a->offsets();
  if (auto n = f.body_as_Nack()) body = reinterpret_cast<const Table*>(n), offsets = n->offsets();
  if (auto u = f.body_as_Unsubscribe())
    body = reinterpret_cast<const Table*>(u), offsets = u->held();
  if (auto cr = f.body_as_Credit()) body = reinterpret_cast<const Table*>(cr);
  if (!body) return;
  // Each of these tables has subscription_id as its first field.
  constexpr int kField = wire::Ack::VT_SUBSCRIPTION_ID;
  static_assert(kField == int{wire::Nack::VT_SUBSCRIPTION_ID} &&
                kField == int{wire::Credit::VT_SUBSCRIPTION_ID} &&
                kField == int{wire::Unsubscribe::VT_SUBSCRIPTION_ID});
  auto table = const_cast<Table*>(body);
  uint64_t k = table->GetField<uint64_t>(kField, 0);
  if (k >= 1 && k <= c.subscriptions().size()) {
    table->SetField<uint64_t>(kField, c.subscriptions()[k - 1], 0);
  }
  if (!offsets) return;
  auto mutable_offsets = const_cast<offsets_t*>(offsets);
  for (uint32_t i = 0; i < offsets->size(); ++i) {
    uint64_t v = offsets->Get(i);
    if (v < c.delivered().size()) mutable_offsets->Mutate(i, c.delivered()[v]);
  }
}

/// Sends the input frame by frame (kInteractive).
/// Sends the input frame by frame (kInteractive). Returns how many requests
/// that get an answer were sent per request_id.
std::map<uint64_t, size_t> send_interactive(connection& c, std::span<const uint8_t> bytes,
                                            size_t piece, const outcome& out) {
  std::map<uint64_t, size_t> asked;
  while (!bytes.empty() && !c.done()) {
    uint32_t len = 0;
    if (bytes.size() >= sizeof len) std::memcpy(&len, bytes.data(), sizeof len);
    if (bytes.size() < sizeof len || bytes.size() - sizeof len < len) {
      c.send(bytes, piece);  // an incomplete frame: as it is
      break;
    }
    aligned_frame frame(bytes.first(sizeof len + len));
    bytes = bytes.subspan(sizeof len + len);
    const wire::Frame* f = wire::verify_frame(frame.span());
    if (f) map_references(*f, c);
    size_t before = out.frames.size();
    c.send(frame.span(), piece);
    if (f && f->request_id() != 0 && answered(f->body_type())) {
      asked[f->request_id()]++;
      c.await_answer(before, f->request_id());
    }
  }
  return asked;
}

/// Each request is answered at most once, and only requests are answered.
std::string check_answers(const std::map<uint64_t, size_t>& asked, const outcome& out) {
  std::map<uint64_t, size_t> answers;
  for (auto& r : out.frames) {
    if (r.request_id == 0) continue;
    auto it = asked.find(r.request_id);
    if (++answers[r.request_id] > (it == asked.end() ? 0 : it->second)) {
      return "the broker sent a " + std::string(wire::EnumNameBody(r.kind)) + " for request_id " +
             std::to_string(r.request_id) + " that was asked " +
             std::to_string(it == asked.end() ? 0 : it->second) + " time(s)";
    }
  }
  return {};
}

}  // namespace

outcome play(uint16_t port, std::span<const uint8_t> input,
             std::chrono::milliseconds close_timeout) {
  outcome out;
  uint8_t flags = input.empty() ? 0 : input[0];
  std::span<const uint8_t> bytes = input.empty() ? input : input.subspan(1);
  size_t piece = flags & kDribble ? 1 + (flags >> 4) : 0;

  connection c(port, clock_type::now() + close_timeout, out);
  if (!out.connected) return out;
  if (flags & kHello) {
    static const std::vector<uint8_t> hello = [] {
      flatbuffers::FlatBufferBuilder fbb(128);
      auto name = fbb.CreateString("protocol_fuzzer");
      wire::finish_frame(fbb, 0, wire::CreateHello(fbb, wire::kProtocolVersion, name));
      return std::vector<uint8_t>(fbb.GetBufferPointer(), fbb.GetBufferPointer() + fbb.GetSize());
    }();
    c.send(hello, 0);
  }
  std::optional<std::map<uint64_t, size_t>> asked;  // known in interactive mode
  if (flags & kInteractive) {
    asked = send_interactive(c, bytes, piece, out);
  } else {
    c.send(bytes, piece);
  }
  if (flags & kReset) return out;  // the destructor resets the connection
  c.finish();
  if (c.timed_out() && out.finding.empty()) {
    out.finding = "hang: the broker neither answered nor closed the connection within " +
                  std::to_string(close_timeout.count()) + " ms";
  }
  if (asked && out.finding.empty()) out.finding = check_answers(*asked, out);
  return out;
}

}  // namespace wharf::fuzz
