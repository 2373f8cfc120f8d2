// The HTML report of a real gate, opened in a real browser: `leakgate run` of the reference service
// with every fault (scenarios/reference-before.json) writes report.html, which headless Chromium
// loads without a console error, a script error, a failed request or any request at all besides the
// page itself; after load the DOM holds the five charts with the baseline, run and cooldown bands of
// every run, the verdict is visible on the first screen, and the page is no wider than the window.
// A deliberately broken page is opened in the same browser first, so the test shows it sees the
// errors it claims to see. Screenshots of the report are kept in LEAKGATE_BINARY_DIR/tests/ for a
// person to look at.
//
// The browser is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: the browser
// reads NUL-terminated JSON messages on fd 3 and writes on fd 4), which reports console messages,
// exceptions and every network request as events, unlike the log lines of --enable-logging (which
// say nothing of a missing image). Chromium runs in its own process group with a fresh profile in a
// temporary folder; every wait has a deadline, and the group is killed at the end whatever happens.
// Skipped when no `chromium` is on PATH.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/command.h"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kLeakgate = LEAKGATE_BINARY_DIR "/bin/leakgate";
const std::string kScenarios = LEAKGATE_SOURCE_DIR "/scenarios";
const std::string kScreenshot = LEAKGATE_BINARY_DIR "/tests/html_report_screenshot.png";
const std::string kScreenshotFull = LEAKGATE_BINARY_DIR "/tests/html_report_screenshot_full.png";
constexpr int kWindowWidth = 1366;
constexpr int kWindowHeight = 900;
constexpr auto kCallTimeout = std::chrono::seconds(30);

using leakgate::testing::TempDir;

std::optional<std::string> FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return std::nullopt;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string DecodeBase64(const std::string& text) {
  std::array<int, 256> value;
  value.fill(-1);
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < alphabet.size(); ++i) value[static_cast<unsigned char>(alphabet[i])] = i;
  std::string out;
  int bits = 0, buffer = 0;
  for (unsigned char c : text) {
    if (value[c] < 0) continue;  // '=' padding, line breaks
    buffer = (buffer << 6) | value[c];
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

// Width and height from a PNG's IHDR chunk; nullopt when the file is not a PNG.
std::optional<std::pair<int, int>> PngSize(const fs::path& path) {
  const std::string bytes = ReadFile(path);
  if (bytes.size() < 24 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0) return std::nullopt;
  auto be32 = [&](size_t at) {
    return (static_cast<unsigned char>(bytes[at]) << 24) |
           (static_cast<unsigned char>(bytes[at + 1]) << 16) |
           (static_cast<unsigned char>(bytes[at + 2]) << 8) | static_cast<unsigned char>(bytes[at + 3]);
  };
  return std::make_pair(be32(16), be32(20));
}

// What a page did while loading: problems a person would see in the browser's console, and every
// URL it requested.
struct PageLoad {
  std::vector<std::string> problems;
  std::vector<std::string> requests;
};

// Headless Chromium driven over the DevTools protocol on a pipe. Not thread-safe.
class Chromium {
 public:
  explicit Chromium(const std::string& binary) {
    int to_browser[2], from_browser[2];
    if (pipe2(to_browser, O_CLOEXEC) != 0 || pipe2(from_browser, O_CLOEXEC) != 0) {
      error_ = "pipe2 failed";
      return;
    }
    const std::string profile = "--user-data-dir=" + (profile_.path() / "profile").string();
    const std::string log = (profile_.path() / "chromium.log").string();
    const std::string window =
        "--window-size=" + std::to_string(kWindowWidth) + "," + std::to_string(kWindowHeight);
    std::vector<std::string> args = {binary,
                                     "--headless",
                                     // The sandbox needs user namespaces, which root (and many
                                     // containers) do not get.
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--remote-debugging-pipe",
                                     "--no-first-run",
                                     "--no-default-browser-check",
                                     "--disable-extensions",
                                     "--disable-background-networking",
                                     "--disable-component-update",
                                     "--disable-sync",
                                     "--hide-scrollbars",
                                     "--mute-audio",
                                     profile,
                                     window,
                                     "about:blank"};
    pid_ = fork();
    if (pid_ < 0) {
      error_ = "fork failed";
      return;
    }
    if (pid_ == 0) {
      setpgid(0, 0);
      // Above the fds the pipes use, then onto 3 and 4 (dup2 clears close-on-exec).
      const int in = fcntl(to_browser[0], F_DUPFD, 10);
      const int out = fcntl(from_browser[1], F_DUPFD, 10);
      dup2(in, 3);
      dup2(out, 4);
      const int null = open("/dev/null", O_RDWR);
      const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(null, 0);
      dup2(null, 1);
      dup2(log_fd >= 0 ? log_fd : null, 2);
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    setpgid(pid_, pid_);  // also here, so the group exists whichever of the two runs first
    close(to_browser[0]);
    close(from_browser[1]);
    write_fd_ = to_browser[1];
    read_fd_ = from_browser[0];
  }

  ~Chromium() {
    if (pid_ > 0) {
      if (write_fd_ >= 0) Send("Browser.close", json::object(), "");
      bool exited = false;
      for (int i = 0; i < 50 && !exited; ++i) {
        int status = 0;
        exited = waitpid(pid_, &status, WNOHANG) == pid_;
        if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      kill(-pid_, SIGKILL);  // the whole group: renderers, zygotes, a hung browser
      if (!exited) waitpid(pid_, nullptr, 0);
    }
    if (write_fd_ >= 0) close(write_fd_);
    if (read_fd_ >= 0) close(read_fd_);
  }

  const std::string& error() const { return error_; }
  std::string Log() const { return ReadFile(profile_.path() / "chromium.log"); }

  // Sends a command and waits for its answer, keeping the events that arrive meanwhile.
  // The answer's "result"; an object with "error" when the browser refused or did not answer.
  json Call(const std::string& method, const json& params = json::object(),
            const std::string& session = "") {
    const int id = Send(method, params, session);
    if (id < 0) return {{"error", "cannot write to the browser"}};
    std::optional<json> reply =
        WaitFor([&](const json& m) { return m.value("id", -1) == id; }, kCallTimeout);
    if (!reply) return {{"error", method + ": no answer within 30 s"}};
    if (reply->contains("error")) return {{"error", method + ": " + (*reply)["error"].dump()}};
    return reply->value("result", json::object());
  }

  // Waits for a message matching `wanted`; every event read is kept. nullopt at the deadline or
  // when the browser closed the pipe.
  template <class Predicate>
  std::optional<json> WaitFor(Predicate wanted, Clock::duration timeout) {
    const Clock::time_point deadline = Clock::now() + timeout;
    for (;;) {
      for (size_t end; (end = buffer_.find('\0')) != std::string::npos;) {
        json message = json::parse(buffer_.substr(0, end), nullptr, false);
        buffer_.erase(0, end + 1);
        if (message.is_discarded()) continue;
        if (message.contains("method")) events_.push_back(message);
        if (wanted(message)) return message;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd fd{read_fd_, POLLIN, 0};
      if (poll(&fd, 1, static_cast<int>(left)) <= 0) continue;
      char chunk[65536];
      const ssize_t n = read(read_fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, n);
    }
  }

  // Opens `url` in a new tab of kWindowWidth x kWindowHeight and waits for its load event; the
  // session id of the tab, "" (with a failure recorded) when that failed.
  std::string Open(const std::string& url) {
    const json target = Call("Target.createTarget", {{"url", "about:blank"}});
    if (target.contains("error")) {
      ADD_FAILURE() << target["error"];
      return "";
    }
    const json attached =
        Call("Target.attachToTarget", {{"targetId", target["targetId"]}, {"flatten", true}});
    if (attached.contains("error")) {
      ADD_FAILURE() << attached["error"];
      return "";
    }
    const std::string session = attached["sessionId"];
    for (const char* domain : {"Runtime.enable", "Log.enable", "Network.enable", "Page.enable"}) {
      const json enabled = Call(domain, json::object(), session);
      if (enabled.contains("error")) ADD_FAILURE() << enabled["error"];
    }
    Resize(session, kWindowWidth, kWindowHeight);
    const json navigated = Call("Page.navigate", {{"url", url}}, session);
    if (navigated.contains("error") || navigated.contains("errorText")) {
      ADD_FAILURE() << "cannot open " << url << ": " << navigated.dump();
      return "";
    }
    const auto loaded = WaitFor(
        [&](const json& m) {
          return m.value("method", "") == "Page.loadEventFired" &&
                 m.value("sessionId", "") == session;
        },
        kCallTimeout);
    if (!loaded) {
      ADD_FAILURE() << url << " did not finish loading within 30 s";
      return "";
    }
    // Late messages (a failed request after load, an error in a timer) still arrive.
    WaitFor([](const json&) { return false; }, std::chrono::milliseconds(300));
    return session;
  }

  void Resize(const std::string& session, int width, int height) {
    const json resized = Call("Emulation.setDeviceMetricsOverride", {{"width", width},
                                                                    {"height", height},
                                                                    {"deviceScaleFactor", 1},
                                                                    {"mobile", false}},
                              session);
    if (resized.contains("error")) ADD_FAILURE() << resized["error"];
  }

  // The value of a JavaScript expression in the page (JSON-serialisable); null on an exception.
  json Evaluate(const std::string& session, const std::string& expression) {
    const json reply = Call("Runtime.evaluate",
                            {{"expression", expression}, {"returnByValue", true}}, session);
    if (reply.contains("error") || reply.contains("exceptionDetails")) {
      ADD_FAILURE() << "evaluation failed: " << reply.dump();
      return nullptr;
    }
    return reply["result"].value("value", json());
  }

  // A PNG of the window, or of the whole page when `full_page`.
  bool Screenshot(const std::string& session, const fs::path& path, bool full_page) {
    json params = {{"format", "png"}};
    if (full_page) {
      const json size = Evaluate(session,
                                 "({w: document.documentElement.scrollWidth, "
                                 "h: document.documentElement.scrollHeight})");
      if (!size.is_object()) return false;
      params["captureBeyondViewport"] = true;
      params["clip"] = {{"x", 0}, {"y", 0}, {"width", size["w"]}, {"height", size["h"]},
                        {"scale", 1}};
    }
    const json shot = Call("Page.captureScreenshot", params, session);
    if (!shot.contains("data")) {
      ADD_FAILURE() << "screenshot failed: " << shot.dump().substr(0, 300);
      return false;
    }
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << DecodeBase64(shot["data"].get<std::string>());
    return static_cast<bool>(out);
  }

  // Console errors and warnings, uncaught exceptions, errors the browser logged (a resource that
  // failed to load) and failed requests of one tab, with every URL it requested.
  PageLoad LoadOf(const std::string& session) const {
    PageLoad load;
    std::map<std::string, std::string> urls;  // request id -> URL
    for (const json& event : events_) {
      if (event.value("sessionId", "") != session) continue;
      const std::string method = event["method"];
      const json& params = event["params"];
      if (method == "Network.requestWillBeSent") {
        const std::string url = params["request"]["url"];
        urls[params["requestId"]] = url;
        load.requests.push_back(url);
      } else if (method == "Network.loadingFailed") {
        load.problems.push_back("request failed: " + urls[params["requestId"]] + " (" +
                                params.value("errorText", "") + ")");
      } else if (method == "Network.responseReceived" &&
                 params["response"].value("status", 200) >= 400) {
        load.problems.push_back("HTTP " + std::to_string(params["response"].value("status", 0)) +
                                " for " + params["response"].value("url", ""));
      } else if (method == "Runtime.exceptionThrown") {
        const json& details = params["exceptionDetails"];
        std::string text = details.value("text", "exception");
        if (details.contains("exception")) {
          text += " " + details["exception"].value("description", "");
        }
        load.problems.push_back("exception: " + text);
      } else if (method == "Runtime.consoleAPICalled") {
        const std::string type = params.value("type", "");
        if (type != "error" && type != "warning" && type != "assert") continue;
        std::string text = "console." + type + ":";
        for (const json& arg : params["args"]) {
          text += " " + (arg.contains("value") ? arg["value"].dump() : arg.value("description", ""));
        }
        load.problems.push_back(text);
      } else if (method == "Log.entryAdded") {
        const json& entry = params["entry"];
        if (entry.value("level", "") != "error" && entry.value("level", "") != "warning") continue;
        load.problems.push_back("log " + entry.value("level", "") + ": " +
                                entry.value("text", "") + " " + entry.value("url", ""));
      }
    }
    return load;
  }

 private:
  int Send(const std::string& method, const json& params, const std::string& session) {
    const int id = ++last_id_;
    json message = {{"id", id}, {"method", method}, {"params", params}};
    if (!session.empty()) message["sessionId"] = session;
    const std::string text = message.dump() + '\0';
    size_t written = 0;
    while (written < text.size()) {
      const ssize_t n = write(write_fd_, text.data() + written, text.size() - written);
      if (n <= 0) return -1;
      written += n;
    }
    return id;
  }

  TempDir profile_{"leakgate-html"};
  pid_t pid_ = -1;
  int write_fd_ = -1;
  int read_fd_ = -1;
  int last_id_ = 0;
  std::string buffer_;
  std::vector<json> events_;
  std::string error_;
};

using GateRun = leakgate::testing::CommandOutput;

GateRun RunGate(const std::string& scenario, const fs::path& out) {
  return leakgate::testing::RunCommand("CI=true " + kLeakgate + " run " + scenario +
                                       " --quiet --out " + out.string() + " 2>&1");
}

bool Contains(const std::vector<std::string>& lines, const std::string& needle) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& line) { return line.find(needle) != std::string::npos; });
}

// Everything the test asserts about the report's DOM after load, gathered in one evaluation.
const char* const kReportFacts = R"js((() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => ({
    metric: svg.dataset.metric,
    width: svg.getBoundingClientRect().width,
    bands: [...svg.querySelectorAll('rect.phase')].map(r =>
        [...r.classList].find(c => c.startsWith('phase-')) + ':' + r.dataset.run),
    thresholds: svg.querySelectorAll('g.threshold').length,
    lines: svg.querySelectorAll('polyline.line').length,
  }));
  const badge = document.querySelector('#verdict .verdict');
  const box = badge ? badge.getBoundingClientRect() : null;
  const style = badge ? getComputedStyle(badge) : null;
  const banner = document.querySelector('#verdict');
  return {
    charts,
    meta_verdict: (document.querySelector('meta[name="leakgate-verdict"]') || {}).content || '',
    verdict_text: badge ? badge.textContent : '',
    verdict_visible: !!badge && box.width > 0 && box.height > 0 && box.top >= 0 &&
        box.bottom <= innerHeight && style.visibility === 'visible' && style.display !== 'none',
    verdict_background: style ? style.backgroundColor : '',
    banner_text: banner ? banner.innerText : '',
    scroll_width: document.documentElement.scrollWidth,
    inner_width: innerWidth,
    scroll_height: document.documentElement.scrollHeight,
    scripts: document.scripts.length,
  };
})())js";

TEST(HtmlBrowserTest, RealGateReportLoadsCleanlyInChromium) {
  const std::optional<std::string> chromium = FindOnPath("chromium");
  if (!chromium) GTEST_SKIP() << "no `chromium` on PATH (Debian package chromium; scripts/setup.sh)";
  ASSERT_TRUE(fs::exists(kLeakgate)) << kLeakgate << " is not built";
  signal(SIGPIPE, SIG_IGN);  // a browser that dies makes writes fail instead of killing the test

  TempDir dir("leakgate-html");
  ASSERT_FALSE(dir.path().empty());
  const fs::path out = dir.path() / "gate";
  const GateRun gate = RunGate(kScenarios + "/reference-before.json", out);
  ASSERT_EQ(gate.exit_code, 1) << "the faulty reference service should fail its gate:\n" << gate.output;
  const fs::path report = out / "report.html";
  ASSERT_TRUE(fs::exists(report)) << "leakgate run did not write report.html:\n" << gate.output;
  const json result = json::parse(ReadFile(out / "result.json"));

  Chromium browser(*chromium);
  ASSERT_TRUE(browser.error().empty()) << browser.error();

  // First a page that is broken on purpose: the test must see what is wrong with it.
  const fs::path broken = dir.path() / "broken.html";
  std::ofstream(broken) << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>broken</title>"
                           "</head><body><p>broken on purpose</p>"
                           "<img src=\"missing-picture.png\" alt=\"missing\">"
                           "<script>console.error('deliberate console error');</script>"
                           "<script>notDefinedFunction();</script></body></html>\n";
  const std::string broken_tab = browser.Open("file://" + broken.string());
  ASSERT_FALSE(broken_tab.empty()) << browser.Log();
  const PageLoad broken_load = browser.LoadOf(broken_tab);
  EXPECT_TRUE(Contains(broken_load.problems, "notDefinedFunction is not defined"))
      << ::testing::PrintToString(broken_load.problems);
  EXPECT_TRUE(Contains(broken_load.problems, "deliberate console error"))
      << ::testing::PrintToString(broken_load.problems);
  EXPECT_TRUE(Contains(broken_load.problems, "missing-picture.png"))
      << ::testing::PrintToString(broken_load.problems);
  EXPECT_TRUE(Contains(broken_load.requests, "missing-picture.png"));

  // Then the report.
  const std::string url = "file://" + report.string();
  const std::string tab = browser.Open(url);
  ASSERT_FALSE(tab.empty()) << browser.Log();
  const PageLoad load = browser.LoadOf(tab);
  EXPECT_THAT(load.problems, ::testing::IsEmpty());
  EXPECT_EQ(load.requests, std::vector<std::string>{url}) << "the report fetched something";

  const json facts = browser.Evaluate(tab, kReportFacts);
  ASSERT_TRUE(facts.is_object());
  std::set<std::string> metrics;
  for (const json& chart : facts["charts"]) {
    const std::string metric = chart["metric"];
    SCOPED_TRACE(metric);
    metrics.insert(metric);
    EXPECT_GT(chart["width"].get<double>(), 400) << "a chart narrower than 400 px is unreadable";
    EXPECT_GE(chart["lines"].get<int>(), 1);
    const std::vector<std::string> bands = chart["bands"];
    EXPECT_THAT(bands, ::testing::Contains("phase-baseline:0"));
    for (const json& run : result["runs"]) {
      const std::string k = std::to_string(run["index"].get<int>());
      EXPECT_THAT(bands, ::testing::Contains("phase-run:" + k));
      EXPECT_THAT(bands, ::testing::Contains("phase-cooldown:" + k));
    }
    if (metric != "heap_bytes") {
      EXPECT_GE(chart["thresholds"].get<int>(), 1);
    }
  }
  EXPECT_EQ(metrics, (std::set<std::string>{"cpu_pct", "rss_bytes", "heap_bytes", "fds", "threads"}));
  EXPECT_EQ(facts["meta_verdict"], result["verdict"]);
  EXPECT_EQ(facts["verdict_text"], result["verdict"]);
  EXPECT_TRUE(facts["verdict_visible"].get<bool>()) << "the verdict is not on the first screen";
  EXPECT_EQ(facts["verdict_background"], "rgb(198, 40, 40)") << "a failed gate reads in red";
  for (const json& check : result["checks"]) {
    if (check["verdict"] == "fail") {
      EXPECT_THAT(facts["banner_text"].get<std::string>(), HasSubstr(check["name"].get<std::string>()));
    }
  }
  EXPECT_EQ(facts["scripts"], 0) << "the report needs no script";
  EXPECT_LE(facts["scroll_width"].get<int>(), facts["inner_width"].get<int>())
      << "the page is wider than a " << kWindowWidth << " px window";

  // A smaller laptop: still nothing to scroll sideways.
  browser.Resize(tab, 1024, 768);
  const json narrow = browser.Evaluate(tab, kReportFacts);
  ASSERT_TRUE(narrow.is_object());
  EXPECT_LE(narrow["scroll_width"].get<int>(), narrow["inner_width"].get<int>())
      << "the page is wider than a 1024 px window";
  browser.Resize(tab, kWindowWidth, kWindowHeight);

  // Screenshots for a person: the first screen, and the whole page.
  ASSERT_TRUE(browser.Screenshot(tab, kScreenshot, false));
  const auto size = PngSize(kScreenshot);
  ASSERT_TRUE(size.has_value()) << kScreenshot << " is not a PNG";
  EXPECT_EQ(*size, std::make_pair(kWindowWidth, kWindowHeight));
  ASSERT_TRUE(browser.Screenshot(tab, kScreenshotFull, true));
  const auto full = PngSize(kScreenshotFull);
  ASSERT_TRUE(full.has_value()) << kScreenshotFull << " is not a PNG";
  EXPECT_EQ(full->first, kWindowWidth);
  EXPECT_EQ(full->second, facts["scroll_height"].get<int>());
  EXPECT_GT(full->second, kWindowHeight);
  std::cout << "screenshots: " << kScreenshot << ", " << kScreenshotFull << "\n";

  const PageLoad after_all = browser.LoadOf(tab);
  EXPECT_THAT(after_all.problems, ::testing::IsEmpty());
}

}  // namespace
