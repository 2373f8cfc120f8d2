// Tests of HttpWorkload against a real HTTP server on 127.0.0.1: a fake asynchronous job API where
// POST creates a job that is done after a set number of polls.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness/scenario/scenario.h"
#include "harness/drive/workload.h"

namespace leakgate::harness {
namespace {

using nlohmann::json;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using SteadyClock = std::chrono::steady_clock;

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// POST /jobs {"name": N} -> 202 {"id", "status": "queued"}; GET /jobs/ID -> "running" until the
// job has been polled `done_after` times, then "done" ("failed" for a job named "bad").
class FakeJobApi {
 public:
  explicit FakeJobApi(int done_after) : done_after_(done_after) {
    server_.set_tcp_nodelay(true);
    server_.set_keep_alive_timeout(1);
    const auto create = [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      const json body = json::parse(request.body, nullptr, false);
      std::lock_guard lock(mutex_);
      const std::string id = "job-" + std::to_string(jobs_.size() + 1);
      jobs_[id] = Job{body.is_object() ? body.value("name", "") : "", 0};
      names_.push_back(jobs_[id].name);
      response.status = 202;
      response.set_content(
          json({{"id", id}, {"status", "queued"}, {"number", jobs_.size()}}).dump(),
          "application/json");
    };
    server_.Post("/jobs", create);
    server_.Post("/api/v1/jobs", create);
    server_.Get(R"(/jobs/([^/]+))",
                [this](const httplib::Request& request, httplib::Response& response) {
                  Record(request);
                  std::lock_guard lock(mutex_);
                  const auto it = jobs_.find(request.matches[1]);
                  if (it == jobs_.end()) {
                    response.status = 404;
                    response.set_content(R"({"error":"no such job"})", "application/json");
                    return;
                  }
                  Job& job = it->second;
                  ++job.polls;
                  std::string status = "running";
                  if (job.polls >= done_after_) status = job.name == "bad" ? "failed" : "done";
                  response.set_content(
                      json({{"id", it->first}, {"status", status}, {"polls", job.polls}}).dump(),
                      "application/json");
                });
    server_.Get("/slow", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      for (int i = 0; i < 200 && !stopping_.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      response.set_content(R"({"status":"late"})", "application/json");
    });
    server_.Get("/text", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      response.set_content("all good, but not JSON", "text/plain");
    });
    server_.Get("/error", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      response.status = 500;
      response.set_content(R"({"error":"boom"})", "application/json");
    });
    server_.Post("/echo", [this](const httplib::Request& request, httplib::Response& response) {
      Record(request);
      response.set_content(json({{"body", request.body},
                                 {"content_type", request.get_header_value("Content-Type")},
                                 {"x_run", request.get_header_value("X-Run")},
                                 {"x_suite", request.get_header_value("X-Suite")}})
                               .dump(),
                           "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  ~FakeJobApi() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::vector<std::string> names() {
    std::lock_guard lock(mutex_);
    return names_;
  }
  // The client ports of the requests seen, in order: one per connection.
  std::vector<int> remote_ports() {
    std::lock_guard lock(mutex_);
    return remote_ports_;
  }
  int requests() {
    std::lock_guard lock(mutex_);
    return static_cast<int>(remote_ports_.size());
  }

 private:
  struct Job {
    std::string name;
    int polls = 0;
  };

  void Record(const httplib::Request& request) {
    std::lock_guard lock(mutex_);
    remote_ports_.push_back(request.remote_port);
  }

  int done_after_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::map<std::string, Job> jobs_;
  std::vector<std::string> names_;
  std::vector<int> remote_ports_;
};

HttpStep Step(std::string method, std::string path) {
  HttpStep step;
  step.method = std::move(method);
  step.path = std::move(path);
  return step;
}

// POST a job named `name`, capture its id, poll until done or failed, expect done.
HttpWorkloadConfig JobConfig(const std::string& base_url, const std::string& name = "run-${RUN}") {
  HttpWorkloadConfig config;
  config.base_url = base_url;
  HttpStep create = Step("POST", "/jobs");
  create.json = json{{"name", name}};
  create.expect_status = {202};
  create.capture = {{"id", "/id"}, {"number", "/number"}};
  HttpStep poll = Step("GET", "/jobs/${id}");
  poll.until = JsonValueMatch{"/status", {"done", "failed"}};
  poll.expect = JsonValueMatch{"/status", {"done"}};
  poll.poll_interval_s = 0.01;
  poll.timeout_s = 5;
  config.steps = {create, poll};
  return config;
}

int SocketCount() {
  int sockets = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(entry.path(), ec);
    if (!ec && target.string().rfind("socket:", 0) == 0) ++sockets;
  }
  return sockets;
}

TEST(HttpWorkloadTest, CapturesAValueAndPollsUntilTheJobIsDone) {
  FakeJobApi api(/*done_after=*/3);
  HttpWorkload workload(JobConfig(api.base_url()), PlaceholderValues{});
  std::atomic<bool> cancel{false};

  auto first = workload.Run(1, cancel);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(first->requests, 4);  // one POST, three polls
  EXPECT_EQ(first->captured.at("id"), "job-1");
  EXPECT_EQ(first->captured.at("number"), "1");  // numbers are captured as their JSON text
  EXPECT_THAT(first->description,
              AllOf(HasSubstr("POST /jobs 202"), HasSubstr("GET /jobs/job-1 200 x3 -> done")));
  EXPECT_GT(first->duration_s, 0);

  auto second = workload.Run(2, cancel);
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(second->captured.at("id"), "job-2");
  EXPECT_THAT(api.names(), ElementsAre("run-1", "run-2"));
}

TEST(HttpWorkloadTest, OneConnectionPerRunClosedWhenTheRunEnds) {
  FakeJobApi api(/*done_after=*/2);
  HttpWorkload workload(JobConfig(api.base_url()), PlaceholderValues{});
  std::atomic<bool> cancel{false};
  const int sockets_before = SocketCount();
  ASSERT_TRUE(workload.Run(1, cancel));
  ASSERT_TRUE(workload.Run(2, cancel));

  const auto ports = api.remote_ports();
  ASSERT_EQ(ports.size(), 6u);
  // Keep-alive within a run, a new connection for the next run.
  EXPECT_EQ(std::set<int>(ports.begin(), ports.begin() + 3).size(), 1u);
  EXPECT_EQ(std::set<int>(ports.begin() + 3, ports.end()).size(), 1u);
  EXPECT_NE(ports[0], ports[3]);

  // Neither the client's socket nor (once it sees the close) the server's stays open.
  const auto start = SteadyClock::now();
  while (SocketCount() != sockets_before && SecondsSince(start) < 3) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(SocketCount(), sockets_before);
}

TEST(HttpWorkloadTest, FailedJobFailsTheExpectation) {
  FakeJobApi api(/*done_after=*/2);
  HttpWorkload workload(JobConfig(api.base_url(), "bad"), PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(3, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("run 3"),
                    HasSubstr("step 2 of 2 (/workload/http/steps/1, GET " + api.base_url() +
                              "/jobs/job-1)"),
                    HasSubstr("expect: /status is \"failed\", expected one of \"done\""),
                    HasSubstr("body: {")));
}

TEST(HttpWorkloadTest, UntilTimeoutNamesTheLastValueSeen) {
  FakeJobApi api(/*done_after=*/1000000);
  HttpWorkloadConfig config = JobConfig(api.base_url());
  config.steps[1].timeout_s = 0.3;
  config.steps[1].poll_interval_s = 0.02;
  HttpWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  const auto start = SteadyClock::now();
  auto run = workload.Run(1, cancel);
  const double elapsed = SecondsSince(start);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("until: /status was still \"running\" after 0.3 s"),
                    HasSubstr("expected one of \"done\", \"failed\""),
                    HasSubstr("last body: {\"id\":\"job-1\"")));
  EXPECT_GE(elapsed, 0.28);
  EXPECT_LT(elapsed, 1.5);
  EXPECT_GE(api.requests(), 5);  // it really polled, about every 20 ms
}

TEST(HttpWorkloadTest, UnexpectedStatusNamesStepUrlStatusAndBody) {
  FakeJobApi api(/*done_after=*/1);
  HttpWorkloadConfig config = JobConfig(api.base_url());
  config.steps[0].expect_status = {201};
  HttpWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(
      run.error().message,
      AllOf(HasSubstr("step 1 of 2 (/workload/http/steps/0, POST " + api.base_url() + "/jobs)"),
            HasSubstr("status 202, expected 201"),
            HasSubstr("body: {\"id\":\"job-1\",\"number\":1,\"status\":\"queued\"}")));
}

TEST(HttpWorkloadTest, AnyTwoHundredIsTheDefaultExpectation) {
  FakeJobApi api(/*done_after=*/1);
  HttpWorkloadConfig config;
  config.base_url = api.base_url();
  config.steps = {Step("GET", "/error")};
  HttpWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("status 500, expected a 2xx status"), HasSubstr("boom")));

  config.steps = {Step("GET", "/text")};
  HttpWorkload plain(config, PlaceholderValues{});
  auto text = plain.Run(1, cancel);
  EXPECT_TRUE(text) << text.error().ToString();  // no capture: the body need not be JSON
}

TEST(HttpWorkloadTest, MissingCapturePointerNamesStepAndPointer) {
  FakeJobApi api(/*done_after=*/1);
  HttpWorkloadConfig config = JobConfig(api.base_url());
  config.steps[0].capture = {{"sid", "/session_id"}};
  HttpWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("step 1 of 2"),
                    HasSubstr("capture sid: the response has no value at /session_id")));
}

TEST(HttpWorkloadTest, ResponseThatIsNotJsonCannotBeCaptured) {
  FakeJobApi api(/*done_after=*/1);
  HttpWorkloadConfig config;
  config.base_url = api.base_url();
  HttpStep step = Step("GET", "/text");
  step.capture = {{"x", "/x"}};
  config.steps = {step};
  HttpWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kTargetFailed);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("is not JSON"), HasSubstr("all good, but not JSON")));
}

TEST(HttpWorkloadTest, ServerDownIsUnavailable) {
  auto port = FreePort();
  ASSERT_TRUE(port);
  HttpWorkload workload(JobConfig("http://127.0.0.1:" + std::to_string(*port)),
                        PlaceholderValues{});
  std::atomic<bool> cancel{false};
  const auto start = SteadyClock::now();
  auto run = workload.Run(1, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(run.error().message,
              AllOf(HasSubstr("POST http://127.0.0.1:" + std::to_string(*port) + "/jobs"),
                    HasSubstr("could not connect")));
  EXPECT_LT(SecondsSince(start), 1.0);
}

TEST(HttpWorkloadTest, SlowAnswerTimesOutAsUnavailable) {
  FakeJobApi api(/*done_after=*/1);
  HttpWorkloadConfig config;
  config.base_url = api.base_url();
  HttpStep step = Step("GET", "/slow");
  step.timeout_s = 0.2;
  config.steps = {step};
  HttpWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  const auto start = SteadyClock::now();
  auto run = workload.Run(1, cancel);
  const double elapsed = SecondsSince(start);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kUnavailable);
  EXPECT_THAT(run.error().message, AllOf(HasSubstr("/slow"), HasSubstr("nothing within 0.2 s")));
  EXPECT_LT(elapsed, 1.0);
}

// Runs `workload` once, setting its cancel flag from another thread after 100 ms; returns the run's
// result and the seconds it took.
std::pair<Result<WorkloadRunInfo>, double> RunCancelledAfter100Ms(Workload& workload) {
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel = true;
  });
  const auto start = SteadyClock::now();
  auto run = workload.Run(1, cancel);
  const double elapsed = SecondsSince(start);
  canceller.join();
  return {std::move(run), elapsed};
}

TEST(HttpWorkloadTest, CancelStopsARequestInFlight) {
  FakeJobApi api(/*done_after=*/1);
  HttpWorkloadConfig config;
  config.base_url = api.base_url();
  HttpStep step = Step("GET", "/slow");
  step.timeout_s = 30;
  config.steps = {step};
  HttpWorkload workload(config, PlaceholderValues{});
  auto [run, elapsed] = RunCancelledAfter100Ms(workload);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(run.error().message, HasSubstr("cancelled"));
  EXPECT_LT(elapsed, 0.6);
}

TEST(HttpWorkloadTest, CancelStopsPolling) {
  FakeJobApi api(/*done_after=*/1000000);
  HttpWorkloadConfig config = JobConfig(api.base_url());
  config.steps[1].timeout_s = 30;
  config.steps[1].poll_interval_s = 5;
  HttpWorkload workload(config, PlaceholderValues{});
  auto [run, elapsed] = RunCancelledAfter100Ms(workload);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_LT(elapsed, 0.6);

  std::atomic<bool> already{true};
  auto not_started = workload.Run(2, already);
  ASSERT_FALSE(not_started);
  EXPECT_EQ(not_started.error().code, ErrorCode::kFailedPrecondition);
}

TEST(HttpWorkloadTest, SendsHeadersRawBodiesAndUsesTheBaseUrlPrefix) {
  FakeJobApi api(/*done_after=*/1);
  HttpWorkloadConfig config;
  config.base_url = api.base_url() + "/api/v1/";
  config.headers = {{"X-Suite", "leakgate"}, {"X-Run", "overridden"}};
  HttpStep create = Step("POST", "/jobs");
  create.json = json{{"name", "prefixed-${RUN}"}, {"tags", {"${RUN}", 7}}};
  create.capture = {{"id", "/id"}};
  config.steps = {create};
  HttpWorkload prefixed(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = prefixed.Run(4, cancel);
  ASSERT_TRUE(run) << run.error().ToString();
  EXPECT_THAT(api.names(), ElementsAre("prefixed-4"));

  HttpWorkloadConfig echo_config;
  echo_config.base_url = api.base_url();
  echo_config.headers = {{"X-Suite", "${SUITE}"}};
  HttpStep echo = Step("POST", "/echo");
  echo.body = "raw ${RUN} $${kept}";
  echo.headers = {{"X-Run", "run-${RUN}"}};
  echo.capture = {
      {"body", "/body"}, {"type", "/content_type"}, {"run", "/x_run"}, {"suite", "/x_suite"}};
  echo_config.steps = {echo};
  PlaceholderValues values;
  values.values["SUITE"] = "from-values";
  HttpWorkload echoing(echo_config, values);
  auto echoed = echoing.Run(5, cancel);
  ASSERT_TRUE(echoed) << echoed.error().ToString();
  EXPECT_EQ(echoed->captured.at("body"), "raw 5 ${kept}");
  EXPECT_THAT(echoed->captured.at("type"), HasSubstr("text/plain"));
  EXPECT_EQ(echoed->captured.at("run"), "run-5");
  EXPECT_EQ(echoed->captured.at("suite"), "from-values");
}

TEST(HttpWorkloadTest, UnknownPlaceholderAtRunTimeIsAnInvalidWorkload) {
  FakeJobApi api(/*done_after=*/1);
  HttpWorkloadConfig config;
  config.base_url = api.base_url();
  config.steps = {Step("GET", "/jobs/${never_captured}")};
  HttpWorkload workload(config, PlaceholderValues{});
  std::atomic<bool> cancel{false};
  auto run = workload.Run(1, cancel);
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(run.error().message, HasSubstr("unknown placeholder ${never_captured}"));
  EXPECT_EQ(api.requests(), 0);
}

// A scenario's workload end to end: load-time placeholders (${PORT}) expanded by LoadScenario, the
// captured ${id} and ${RUN} by the workload.
TEST(HttpWorkloadTest, RunsTheWorkloadOfALoadedScenario) {
  FakeJobApi api(/*done_after=*/2);
  const json scenario_json = {
      {"schema", "leakgate.scenario/1"},
      {"target", {{"attach", {{"pid", 1}}}}},
      {"workload",
       {{"http",
         {{"base_url", "http://127.0.0.1:${PORT}"},
          {"steps",
           {{{"method", "POST"},
             {"path", "/jobs"},
             {"json", {{"name", "scenario-${RUN}-on-${PORT}"}}},
             {"expect_status", {202}},
             {"capture", {{"id", "/id"}}}},
            {{"method", "GET"},
             {"path", "/jobs/${id}"},
             {"until", {{"pointer", "/status"}, {"in", {"done", "failed"}}}},
             {"expect", {{"pointer", "/status"}, {"in", {"done"}}}},
             {"poll_interval_s", 0.01},
             {"timeout_s", 5}}}}}}}},
  };
  LoadOptions options;
  options.port = api.port();
  options.bin_dir = "/bin";
  auto scenario = LoadScenarioFromText(scenario_json.dump(), "/s/jobs.json", options);
  ASSERT_TRUE(scenario) << scenario.error().ToString();
  auto workload = MakeWorkload(scenario->workload, scenario->placeholders);
  ASSERT_TRUE(workload) << workload.error().ToString();
  EXPECT_EQ((*workload)->Describe(), "HTTP: 2 steps against " + api.base_url());
  std::atomic<bool> cancel{false};
  auto run = (*workload)->Run(7, cancel);
  ASSERT_TRUE(run) << run.error().ToString();
  EXPECT_EQ(run->captured.at("id"), "job-1");
  EXPECT_EQ(run->requests, 3);
  EXPECT_THAT(api.names(), ElementsAre("scenario-7-on-" + std::to_string(api.port())));
}

}  // namespace
}  // namespace leakgate::harness
