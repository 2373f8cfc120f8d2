#include "engine/exchange_adapter.h"

#include <httplib.h>
#include <pthread.h>

#include <charconv>
#include <exception>
#include <string>
#include <system_error>
#include <utility>

namespace leakgate::engine {
namespace {

constexpr size_t kMaxThreadNameLength = 15;  // Linux TASK_COMM_LEN minus the terminating NUL

std::string UrlFormHint(std::string_view url) {
  return "'" + std::string(url) + "'; expected http://HOST[:PORT], e.g. http://127.0.0.1:8080";
}

std::string DescribeTransportError(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "connection refused or host unreachable";
    case httplib::Error::ConnectionTimeout:
      return "connect timed out";
    case httplib::Error::Read:
      return "no complete response (connection reset or read timed out)";
    case httplib::Error::Write:
      return "request could not be written (connection reset or write timed out)";
    case httplib::Error::Canceled:
      return "request canceled";
    default:
      return "transport error " + httplib::to_string(error);
  }
}

}  // namespace

std::string HttpBaseUrl::ToString() const { return "http://" + host + ":" + std::to_string(port); }

Result<HttpBaseUrl> ParseHttpBaseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument, "base URL has no scheme: " + UrlFormHint(url));
  }
  if (url.substr(0, scheme_end + 3) != kScheme) {
    return Fail(ErrorCode::kInvalidArgument,
                "base URL scheme '" + std::string(url.substr(0, scheme_end)) +
                    "' is not supported (only plain http): " + UrlFormHint(url));
  }
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument,
                "base URL must not carry a path, query or user: " + UrlFormHint(url));
  }
  HttpBaseUrl parsed;
  const size_t colon = rest.rfind(':');
  std::string_view host = rest;
  if (colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    const std::string_view port_text = rest.substr(colon + 1);
    int port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        port < 1 || port > 65535) {
      return Fail(ErrorCode::kInvalidArgument,
                  "base URL port '" + std::string(port_text) +
                      "' is not a number from 1 to 65535: " + UrlFormHint(url));
    }
    parsed.port = port;
  }
  if (host.empty() || host.find_first_of(" \t[]") != std::string_view::npos) {
    return Fail(ErrorCode::kInvalidArgument, "base URL has no valid host: " + UrlFormHint(url));
  }
  parsed.host = std::string(host);
  return parsed;
}

ExchangeAdapter::ExchangeAdapter(ExchangeAdapterOptions options) : options_(std::move(options)) {}

ExchangeAdapter::~ExchangeAdapter() { DisconnectNow(); }

std::string ExchangeAdapter::Url(std::string_view path_and_query) const {
  std::string_view base = options_.base_url;
  if (!base.empty() && base.back() == '/') base.remove_suffix(1);
  return std::string(base) + std::string(path_and_query);
}

Result<void> ExchangeAdapter::Connect() {
  std::lock_guard lifecycle(lifecycle_mutex_);
  if (connected_.load()) return {};

  Result<HttpBaseUrl> url = ParseHttpBaseUrl(options_.base_url);
  if (!url) return std::unexpected(url.error());
  if (options_.heartbeat_thread_name.size() > kMaxThreadNameLength) {
    return Fail(ErrorCode::kInvalidArgument,
                "heartbeat thread name '" + options_.heartbeat_thread_name + "' has " +
                    std::to_string(options_.heartbeat_thread_name.size()) +
                    " characters; Linux keeps at most 15");
  }

  std::unique_ptr<httplib::Client> client;
  try {
    client = std::make_unique<httplib::Client>(url->host, url->port);
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kInternal,
                "cannot create an HTTP client for " + options_.base_url + ": " + e.what());
  }
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  client->set_url_encode(false);  // paths arrive already encoded
  client->set_connection_timeout(options_.connect_timeout);
  client->set_read_timeout(options_.read_timeout);
  client->set_write_timeout(options_.write_timeout);
  if (!options_.accept_compressed_responses) {
    client->set_default_headers({{"Accept-Encoding", "identity"}});
  }

  {
    std::lock_guard lock(client_mutex_);
    client_ = std::move(client);
    Result<HttpResponse> ping = SendLocked(options_.ping_path);
    std::string problem;
    if (!ping) {
      problem = ping.error().message;
    } else if (ping->status != 200) {
      problem = "ping " + Url(options_.ping_path) + " answered HTTP " +
                std::to_string(ping->status) + ": " + ping->body.substr(0, 200);
    }
    if (!problem.empty()) {
      client_->stop();
      client_.reset();
      return Fail(ErrorCode::kUnavailable,
                  "cannot connect to the exchange at " + options_.base_url + ": " + problem);
    }
  }

  {
    std::lock_guard lock(heartbeat_mutex_);
    heartbeat_stop_ = false;
  }
  if (options_.heartbeat_interval.count() > 0) {
    heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
    // Named from here rather than from inside the thread so that the name is in place (in
    // /proc/PID/task/TID/comm) by the time Connect() returns.
    pthread_setname_np(heartbeat_thread_.native_handle(), options_.heartbeat_thread_name.c_str());
  }
  connected_.store(true);
  return {};
}

void ExchangeAdapter::Disconnect() { DisconnectNow(); }

void ExchangeAdapter::DisconnectNow() {
  std::lock_guard lifecycle(lifecycle_mutex_);
  connected_.store(false);
  {
    std::lock_guard lock(heartbeat_mutex_);
    heartbeat_stop_ = true;
  }
  heartbeat_wakeup_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  std::lock_guard lock(client_mutex_);
  if (client_ != nullptr) {
    client_->stop();
    client_.reset();
  }
}

bool ExchangeAdapter::IsConnected() const { return connected_.load(); }

Result<HttpResponse> ExchangeAdapter::Get(std::string_view path_and_query) {
  std::lock_guard lock(client_mutex_);
  if (client_ == nullptr) {
    return Fail(ErrorCode::kFailedPrecondition,
                "not connected to the exchange at " + options_.base_url +
                    ": call Connect() before GET " + std::string(path_and_query));
  }
  return SendLocked(path_and_query);
}

Result<HttpResponse> ExchangeAdapter::SendLocked(std::string_view path_and_query) {
  requests_sent_.fetch_add(1);
  try {
    httplib::Result result = client_->Get(std::string(path_and_query));
    if (!result) {
      return Fail(ErrorCode::kUnavailable, "GET " + Url(path_and_query) + " failed: " +
                                               DescribeTransportError(result.error()));
    }
    return HttpResponse{result->status, std::move(result->body)};
  } catch (const std::exception& e) {
    return Fail(ErrorCode::kUnavailable, "GET " + Url(path_and_query) + " failed: " + e.what());
  }
}

void ExchangeAdapter::HeartbeatLoop() {
  std::unique_lock wait_lock(heartbeat_mutex_);
  while (!heartbeat_wakeup_.wait_for(wait_lock, options_.heartbeat_interval,
                                     [this] { return heartbeat_stop_; })) {
    wait_lock.unlock();
    bool ok = false;
    {
      std::lock_guard lock(client_mutex_);
      if (client_ != nullptr) {
        Result<HttpResponse> ping = SendLocked(options_.ping_path);
        ok = ping && ping->status == 200;
      }
    }
    heartbeats_sent_.fetch_add(1);
    if (!ok) heartbeats_failed_.fetch_add(1);
    wait_lock.lock();
  }
}

}  // namespace leakgate::engine
