// A session with an exchange's REST API, held open the way exchange SDKs hold theirs.
//
// While connected, an `ExchangeAdapter` owns exactly one keep-alive HTTP connection (a real socket,
// opened eagerly by Connect() with a ping and kept open between requests) and one heartbeat thread
// that pings the exchange's server-time endpoint every `heartbeat_interval` to keep the session
// alive. Requests from callers and heartbeats share the connection and are serialized by a mutex.
// Disconnect() wakes and joins the heartbeat thread and closes the socket; the destructor does the
// same. An adapter that is never disconnected therefore keeps one socket, one thread and a little
// CPU alive for as long as it exists: whoever holds the last reference to it decides when they go.
//
// Thread-safety: every method may be called from any thread at any time; Connect() and
// Disconnect() are serialized with each other, Get() calls are serialized with each other and with
// heartbeats. Subclasses (decorators) may override the virtual methods.
#ifndef LEAKGATE_ENGINE_EXCHANGE_ADAPTER_H_
#define LEAKGATE_ENGINE_EXCHANGE_ADAPTER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "engine/error.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace leakgate::engine {

struct HttpResponse {
  int status = 0;
  std::string body;
};

// "http://host[:port][/]" split into its parts; port 80 when absent.
struct HttpBaseUrl {
  std::string host;
  int port = 80;

  std::string ToString() const;  // "http://host:port"
};

// Accepts only plain-HTTP base URLs without a path. Errors (kInvalidArgument) say what was wrong
// and show the expected form: an https:// or other scheme, a missing host, a bad port, a path or
// query.
Result<HttpBaseUrl> ParseHttpBaseUrl(std::string_view url);

struct ExchangeAdapterOptions {
  std::string base_url = "http://127.0.0.1:8080";
  // How often the heartbeat thread pings the exchange; zero or negative: no heartbeat thread.
  std::chrono::milliseconds heartbeat_interval{250};
  // Name of the heartbeat thread as shown in /proc/PID/task/TID/comm; at most 15 characters.
  std::string heartbeat_thread_name = "exch-heartbeat";
  std::string ping_path = "/api/v2/public/time";
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds read_timeout{10000};
  std::chrono::milliseconds write_timeout{10000};
  // Ask the exchange for gzip/brotli-compressed bodies. Off by default: on loopback compression
  // costs more CPU than it saves.
  bool accept_compressed_responses = false;
};

class ExchangeAdapter {
 public:
  explicit ExchangeAdapter(ExchangeAdapterOptions options);
  // Runs the non-virtual part of Disconnect(): the socket and the thread never outlive the adapter.
  virtual ~ExchangeAdapter();

  ExchangeAdapter(const ExchangeAdapter&) = delete;
  ExchangeAdapter& operator=(const ExchangeAdapter&) = delete;

  // Opens the connection by pinging `ping_path` and starts the heartbeat thread.
  // Success: connected, with one open socket and (unless disabled) the heartbeat thread running; a
  // no-op success when already connected.
  // Failure: kInvalidArgument for a malformed base URL or a thread name over 15 characters;
  // kUnavailable naming the URL when the exchange cannot be reached or the ping is not answered
  // with HTTP 200. On failure nothing is left open and the adapter stays disconnected.
  virtual Result<void> Connect();

  // Stops and joins the heartbeat thread (waking it at once) and closes the socket. Never fails;
  // idempotent; a no-op when not connected.
  virtual void Disconnect();

  // True between a successful Connect() and the next Disconnect().
  virtual bool IsConnected() const;

  // Sends GET `path_and_query` (already URL-encoded, starting with '/') over the session's
  // connection, reconnecting transparently when the exchange closed an idle connection.
  // Success: the exchange answered; any HTTP status, with its body (callers judge the status).
  // Failure: kFailedPrecondition when not connected; kUnavailable naming the URL when the request
  // could not be sent or no response arrived (refused, reset, timeout).
  virtual Result<HttpResponse> Get(std::string_view path_and_query);

  // base_url + path_and_query, for messages.
  std::string Url(std::string_view path_and_query) const;
  const ExchangeAdapterOptions& options() const { return options_; }

  // Counted since construction.
  uint64_t heartbeats_sent() const { return heartbeats_sent_.load(); }
  uint64_t heartbeats_failed() const { return heartbeats_failed_.load(); }
  uint64_t requests_sent() const { return requests_sent_.load(); }  // pings included

 private:
  void DisconnectNow();
  void HeartbeatLoop();
  // Sends one request on `client_`; the caller holds client_mutex_.
  Result<HttpResponse> SendLocked(std::string_view path_and_query);

  const ExchangeAdapterOptions options_;

  std::mutex lifecycle_mutex_;  // Connect / Disconnect
  std::atomic<bool> connected_{false};

  std::mutex client_mutex_;  // guards client_ and serializes requests
  std::unique_ptr<httplib::Client> client_;

  std::mutex heartbeat_mutex_;
  std::condition_variable heartbeat_wakeup_;
  bool heartbeat_stop_ = false;  // guarded by heartbeat_mutex_
  std::thread heartbeat_thread_;

  std::atomic<uint64_t> heartbeats_sent_{0};
  std::atomic<uint64_t> heartbeats_failed_{0};
  std::atomic<uint64_t> requests_sent_{0};
};

}  // namespace leakgate::engine

#endif  // LEAKGATE_ENGINE_EXCHANGE_ADAPTER_H_
