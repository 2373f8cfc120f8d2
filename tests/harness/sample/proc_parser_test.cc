// Parsers of /proc text, table-driven on text captured from a Linux 6.x machine (Debian 12 user
// space, cgroup v1/v2 hybrid). Where a case stands for another kernel, the captured text was
// trimmed the way that kernel prints it, and the case says so.
#include "harness/sample/proc_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace leakgate::harness {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int64_t kKiB = 1024;

// ---------------------------------------------------------------------------------------------
// Captured text.

// `cat /proc/self/stat`.
constexpr char kCatStat[] =
    "27195 (cat) R 27193 27193 25268 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 370330 3133440 382 "
    "18446744073709551615 94096338477056 94096338496937 140723864585424 0 0 0 0 0 0 0 0 0 17 0 0 0 "
    "0 0 0 94096338512944 94096338514560 94096795389952 140723864590792 140723864590812 "
    "140723864590812 140723864592363 0\n";

// python3 after writing "(a) b)" to /proc/self/comm: the name holds ") " and an unbalanced ')'.
constexpr char kParenthesizedStat[] =
    "27472 ((a) b)) R 27470 27470 25268 0 -1 4194304 1026 0 1 0 1 2 0 0 20 0 1 0 371599 14381056 "
    "2202 18446744073709551615 4321280 7148169 140730666036448 0 0 0 0 16781312 2 0 0 0 17 0 0 0 0 "
    "0 0 9723336 11027064 953188352 140730666039742 140730666039761 140730666039761 "
    "140730666041319 0\n";

// /proc/self/task/TID/stat of a python thread named "lg worker 1" (spaces in the name).
constexpr char kThreadStat[] =
    "27473 (lg worker 1) S 27470 27470 25268 0 -1 4194368 3 0 0 0 0 0 0 0 20 0 2 0 371605 89899008 "
    "2202 18446744073709551615 4321280 7148169 140730666036448 0 0 0 0 16781312 2 1 0 0 -1 1 0 0 0 "
    "0 0 9723336 11027064 953188352 140730666039742 140730666039761 140730666039761 "
    "140730666041319 0\n";

// A bash that ran 3000 children and then exec'd cat: cutime and cstime hold the children's time.
constexpr char kStatWithReapedChildren[] =
    "1052 (cat) R 1050 1050 25268 0 -1 4194304 60415 216170 0 1 93 471 532 1135 20 0 1 0 414468 "
    "3133440 359 18446744073709551615 94797171191808 94797171211689 140726059293056 0 0 0 0 0 0 0 "
    "0 0 17 0 0 0 0 0 0 94797171227696 94797171229312 94797712814080 140726059297221 "
    "140726059297241 140726059297241 140726059298795 0\n";

// /proc/2/stat: kthreadd, a kernel thread without user memory.
constexpr char kKernelThreadStat[] =
    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 20 0 0 18446744073709551615 0 0 0 "
    "0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

// `cat /proc/self/status`.
constexpr char kCatStatus[] =
    "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t27196\nNgid:\t0\nPid:\t27196\n"
    "PPid:\t27193\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t256\nGroups:\t \n"
    "NStgid:\t27196\nNSpid:\t27196\nNSpgid:\t27193\nNSsid:\t25268\nKthread:\t0\n"
    "VmPeak:\t    3060 kB\nVmSize:\t    3060 kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\n"
    "VmHWM:\t    1748 kB\nVmRSS:\t    1748 kB\nRssAnon:\t     112 kB\nRssFile:\t    1636 kB\n"
    "RssShmem:\t       0 kB\nVmData:\t     360 kB\nVmStk:\t     132 kB\nVmExe:\t      20 kB\n"
    "VmLib:\t    1528 kB\nVmPTE:\t      44 kB\nVmSwap:\t       0 kB\nHugetlbPages:\t       0 kB\n"
    "CoreDumping:\t0\nTHP_enabled:\t1\nuntag_mask:\t0xffffffffffffffff\nThreads:\t1\n"
    "SigQ:\t0/96364\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n"
    "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n"
    "CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n"
    "CapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n"
    "Seccomp_filters:\t0\nSpeculation_Store_Bypass:\tvulnerable\n"
    "SpeculationIndirectBranch:\talways enabled\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n"
    "Mems_allowed:\t00000000,00000001\nMems_allowed_list:\t0\nvoluntary_ctxt_switches:\t0\n"
    "nonvoluntary_ctxt_switches:\t0\n";

// /proc/2/status (kthreadd): no Vm* lines at all.
constexpr char kKernelThreadStatus[] =
    "Name:\tkthreadd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t2\nNgid:\t0\nPid:\t2\nPPid:\t0\n"
    "TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nFDSize:\t64\nGroups:\t \nNStgid:\t2\n"
    "NSpid:\t2\nNSpgid:\t0\nNSsid:\t0\nKthread:\t1\nThreads:\t1\nSigQ:\t0/96364\n"
    "SigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n"
    "SigIgn:\tffffffffffffffff\nSigCgt:\t0000000000000000\nCapInh:\t0000000000000000\n"
    "voluntary_ctxt_switches:\t69\nnonvoluntary_ctxt_switches:\t0\n";

// The memory part of kCatStatus as a kernel before 4.5 prints it: no RssAnon/RssFile/RssShmem.
constexpr char kOldKernelStatus[] =
    "Name:\tcat\nState:\tR (running)\nTgid:\t27196\nPPid:\t27193\nFDSize:\t256\n"
    "VmPeak:\t    3060 kB\nVmSize:\t    3060 kB\nVmHWM:\t    1748 kB\nVmRSS:\t    1748 kB\n"
    "VmSwap:\t       0 kB\nThreads:\t1\n";

// `cat /proc/self/smaps_rollup`.
constexpr char kSmapsRollup[] =
    "55e14da99000-7fff4e142000 ---p 00000000 00:00 0                          [rollup]\n"
    "Rss:                1760 kB\nPss:                 283 kB\nPss_Dirty:           116 kB\n"
    "Pss_Anon:            116 kB\nPss_File:            167 kB\nPss_Shmem:             0 kB\n"
    "Shared_Clean:       1604 kB\nShared_Dirty:          0 kB\nPrivate_Clean:        40 kB\n"
    "Private_Dirty:       116 kB\nReferenced:         1760 kB\nAnonymous:           116 kB\n"
    "KSM:                   0 kB\nLazyFree:              0 kB\nAnonHugePages:         0 kB\n"
    "ShmemPmdMapped:        0 kB\nFilePmdMapped:         0 kB\nShared_Hugetlb:        0 kB\n"
    "Private_Hugetlb:       0 kB\nSwap:                  0 kB\nSwapPss:               0 kB\n"
    "Locked:                0 kB\n";

// kSmapsRollup as kernels 4.14 to 5.8 print it: no Pss_Anon/Pss_File/Pss_Shmem lines.
constexpr char kOldSmapsRollup[] =
    "55e14da99000-7fff4e142000 ---p 00000000 00:00 0                          [rollup]\n"
    "Rss:                1760 kB\nPss:                 283 kB\nShared_Clean:       1604 kB\n"
    "Swap:                  0 kB\nSwapPss:               0 kB\nLocked:                0 kB\n";

// /proc/self/cgroup on this machine: cgroup v1 controllers plus the v2 (unified) entry.
constexpr char kHybridCgroup[] =
    "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n"
    "4:memory:/process_api/438384d703e3f15a864b75e074e82945\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n"
    "0::/\n";

// /proc/self/net/tcp rows of a listener on 127.0.0.1:60845, both ends of a connection to it, and a
// TIME_WAIT row (inode 0).
constexpr char kNetTcp[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode                                                     \n"
    "   0: 0100007F:EDAD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "222420 1 00000000b66a8d13 100 0 0 10 0                    \n"
    "  10: 0100007F:EDAD 0100007F:C174 01 00000000:00000000 00:00000000 00000000     0        0 "
    "222422 1 00000000ab46294c 20 0 0 10 -1                    \n"
    "  33: 0100007F:C174 0100007F:EDAD 01 00000000:00000000 00:00000000 00000000     0        0 "
    "222421 2 0000000048499e87 20 0 0 10 -1                    \n"
    "   2: 0100007F:B9A1 0100007F:94BC 06 00000000:00000000 03:00000000 00000000     0        0 0 "
    "3 "
    "000000007dd7914d                                      \n";

// /proc/self/net/tcp6: a listener on [::1]:33761 and both ends of a connection to it.
constexpr char kNetTcp6[] =
    "  sl  local_address                         remote_address                        st "
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000000000000000000001000000:83E1 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 222382 1 00000000339b6e0c 100 0 0 10 0\n"
    "   1: 00000000000000000000000001000000:A2B8 00000000000000000000000001000000:83E1 01 "
    "00000000:00000000 00:00000000 00000000     0        0 222383 2 000000000a0c876c 20 0 0 10 -1\n"
    "   2: 00000000000000000000000001000000:83E1 00000000000000000000000001000000:A2B8 01 "
    "00000000:00000000 00:00000000 00000000     0        0 222384 1 00000000ddf45816 20 0 0 10 "
    "-1\n";

// /proc/self/net/udp: one unconnected socket bound to 127.0.0.1:41708.
constexpr char kNetUdp[] =
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode ref pointer drops            \n"
    "11039: 0100007F:A2EC 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 "
    "222385 2 000000002c618598 0        \n";

// /proc/self/net/unix: a listener bound to a path with a space, an abstract socket, an unbound
// connected socket.
constexpr char kNetUnix[] =
    "Num       RefCount Protocol Flags    Type St Inode Path\n"
    "000000004972acea: 00000002 00000000 00010000 0001 01 222386 /tmp/lg sampler.sock\n"
    "0000000038cd28c5: 00000002 00000000 00000000 0001 01 222387 @lg-abstract\n"
    "00000000c34c2b00: 00000003 00000000 00000000 0001 03   586\n";

// ---------------------------------------------------------------------------------------------
// stat

struct StatCase {
  const char* name;
  const char* text;
  ProcStat want;
};

class ParseStatTest : public ::testing::TestWithParam<StatCase> {};

TEST_P(ParseStatTest, ReadsFieldsAfterTheLastParenthesis) {
  const StatCase& c = GetParam();
  auto stat = ParseStat(c.text, "/proc/X/stat");
  ASSERT_TRUE(stat.has_value()) << stat.error().ToString();
  EXPECT_EQ(stat->pid, c.want.pid);
  EXPECT_EQ(stat->comm, c.want.comm);
  EXPECT_EQ(stat->state, c.want.state);
  EXPECT_EQ(stat->ppid, c.want.ppid);
  EXPECT_EQ(stat->pgrp, c.want.pgrp);
  EXPECT_EQ(stat->session, c.want.session);
  EXPECT_EQ(stat->utime_ticks, c.want.utime_ticks);
  EXPECT_EQ(stat->stime_ticks, c.want.stime_ticks);
  EXPECT_EQ(stat->cutime_ticks, c.want.cutime_ticks);
  EXPECT_EQ(stat->cstime_ticks, c.want.cstime_ticks);
  EXPECT_EQ(stat->num_threads, c.want.num_threads);
  EXPECT_EQ(stat->starttime_ticks, c.want.starttime_ticks);
  EXPECT_EQ(stat->vsize_bytes, c.want.vsize_bytes);
  EXPECT_EQ(stat->rss_pages, c.want.rss_pages);
}

INSTANTIATE_TEST_SUITE_P(
    Captured, ParseStatTest,
    ::testing::Values(StatCase{"cat",
                               kCatStat,
                               {27195, "cat", 'R', 27193, 27193, 25268, 0, 0, 0, 0, 1, 370330,
                                3133440, 382}},
                      StatCase{"parenthesized_name",
                               kParenthesizedStat,
                               {27472, "(a) b)", 'R', 27470, 27470, 25268, 1, 2, 0, 0, 1, 371599,
                                14381056, 2202}},
                      StatCase{"thread_with_spaces",
                               kThreadStat,
                               {27473, "lg worker 1", 'S', 27470, 27470, 25268, 0, 0, 0, 0, 2,
                                371605, 89899008, 2202}},
                      StatCase{"reaped_children",
                               kStatWithReapedChildren,
                               {1052, "cat", 'R', 1050, 1050, 25268, 93, 471, 532, 1135, 1, 414468,
                                3133440, 359}},
                      StatCase{"kernel_thread",
                               kKernelThreadStat,
                               {2, "kthreadd", 'S', 0, 0, 0, 0, 0, 0, 0, 1, 20, 0, 0}}),
    [](const ::testing::TestParamInfo<StatCase>& info) { return std::string(info.param.name); });

struct MalformedCase {
  const char* name;
  std::string text;
  const char* want_in_message;
};

class ParseStatMalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(ParseStatMalformedTest, NamesThePathTheFieldAndWhatWasExpected) {
  const MalformedCase& c = GetParam();
  auto stat = ParseStat(c.text, "/proc/27195/stat");
  ASSERT_FALSE(stat.has_value());
  EXPECT_EQ(stat.error().code, ErrorCode::kParse);
  EXPECT_THAT(stat.error().message,
              AllOf(StartsWith("/proc/27195/stat: "), HasSubstr(c.want_in_message)));
}

std::string CatStatWithField(int field_number, const std::string& value) {
  // Field numbers of proc(5); the comm "(cat)" is field 2 and has no spaces.
  std::vector<std::string> fields;
  std::string text = kCatStat;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find_first_of(" \n", start);
    fields.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  fields[static_cast<size_t>(field_number - 1)] = value;
  std::string out;
  for (const std::string& f : fields) out += (out.empty() ? "" : " ") + f;
  return out + "\n";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseStatMalformedTest,
    ::testing::Values(
        MalformedCase{"empty", "", "expected \"PID (COMM) STATE PPID ...\""},
        MalformedCase{"no_parentheses", "27195 cat R 27193", "expected \"PID (COMM) STATE PPID"},
        MalformedCase{"truncated", "27195 (cat) R 27193 27193 25268 0 -1",
                      "expected at least 24 (up to rss)"},
        MalformedCase{"pid_not_number", CatStatWithField(1, "x27195"), "field 1 (pid) is 'x27195'"},
        MalformedCase{"state_two_letters", CatStatWithField(3, "RS"),
                      "field 3 (state) is 'RS', expected one letter"},
        MalformedCase{"utime_not_number", CatStatWithField(14, "12a"),
                      "field 14 (utime) is '12a', expected a decimal integer"},
        MalformedCase{"rss_not_number", CatStatWithField(24, "-"),
                      "field 24 (rss) is '-', expected a decimal integer"}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) {
      return std::string(info.param.name);
    });

// ---------------------------------------------------------------------------------------------
// status

TEST(ParseStatusTest, ReadsMemoryInBytesAndThreads) {
  auto status = ParseStatus(kCatStatus, "/proc/27196/status");
  ASSERT_TRUE(status.has_value()) << status.error().ToString();
  EXPECT_EQ(status->name, "cat");
  EXPECT_EQ(status->state, 'R');
  EXPECT_EQ(status->tgid, 27196);
  EXPECT_EQ(status->ppid, 27193);
  EXPECT_EQ(status->vm_peak_bytes, 3060 * kKiB);
  EXPECT_EQ(status->vm_size_bytes, 3060 * kKiB);
  EXPECT_EQ(status->vm_hwm_bytes, 1748 * kKiB);
  EXPECT_EQ(status->vm_rss_bytes, 1748 * kKiB);
  EXPECT_EQ(status->rss_anon_bytes, 112 * kKiB);
  EXPECT_EQ(status->rss_file_bytes, 1636 * kKiB);
  EXPECT_EQ(status->rss_shmem_bytes, 0);
  EXPECT_EQ(status->vm_swap_bytes, 0);
  EXPECT_EQ(status->threads, 1);
  EXPECT_EQ(status->fd_size, 256);
}

TEST(ParseStatusTest, FieldsTheKernelDidNotPrintAreAbsentNotZero) {
  auto kthread = ParseStatus(kKernelThreadStatus, "/proc/2/status");
  ASSERT_TRUE(kthread.has_value()) << kthread.error().ToString();
  EXPECT_EQ(kthread->name, "kthreadd");
  EXPECT_EQ(kthread->threads, 1);
  EXPECT_FALSE(kthread->vm_rss_bytes.has_value());
  EXPECT_FALSE(kthread->vm_hwm_bytes.has_value());
  EXPECT_FALSE(kthread->rss_anon_bytes.has_value());

  auto old = ParseStatus(kOldKernelStatus, "/proc/27196/status");
  ASSERT_TRUE(old.has_value()) << old.error().ToString();
  EXPECT_EQ(old->vm_rss_bytes, 1748 * kKiB);
  EXPECT_FALSE(old->rss_anon_bytes.has_value());
  EXPECT_FALSE(old->rss_file_bytes.has_value());
  EXPECT_FALSE(old->rss_shmem_bytes.has_value());
}

TEST(ParseStatusTest, NameWithSpacesIsKeptWhole) {
  auto status = ParseStatus("Name:\tlg worker 1\nState:\tS (sleeping)\nVmRSS:\t  8 kB\n",
                            "/proc/27473/status");
  ASSERT_TRUE(status.has_value()) << status.error().ToString();
  EXPECT_EQ(status->name, "lg worker 1");
  EXPECT_EQ(status->vm_rss_bytes, 8 * kKiB);
}

class ParseStatusMalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(ParseStatusMalformedTest, NamesThePathTheFieldAndWhatWasExpected) {
  const MalformedCase& c = GetParam();
  auto status = ParseStatus(c.text, "/proc/27196/status");
  ASSERT_FALSE(status.has_value());
  EXPECT_EQ(status.error().code, ErrorCode::kParse);
  EXPECT_THAT(status.error().message,
              AllOf(StartsWith("/proc/27196/status: "), HasSubstr(c.want_in_message)));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseStatusMalformedTest,
    ::testing::Values(
        MalformedCase{"empty", "", "no \"Name:\" line"},
        MalformedCase{"smaps_rollup_instead", "Rss:  1760 kB\nPss:  283 kB\n", "no \"Name:\" line"},
        MalformedCase{"rss_not_number", "Name:\tcat\nVmRSS:\t  abc kB\n",
                      "field VmRSS is 'abc kB', expected a non-negative number followed by \"kB\""},
        MalformedCase{"rss_wrong_unit", "Name:\tcat\nVmHWM:\t  12 MB\n", "field VmHWM is '12 MB'"},
        MalformedCase{"threads_not_number", "Name:\tcat\nThreads:\tmany\n",
                      "field Threads is 'many', expected a decimal integer"},
        MalformedCase{"line_without_colon", "Name:\tcat\nVmRSS 1748 kB\n",
                      "line 2 is 'VmRSS 1748 kB', expected \"Key:\\tValue\""}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) {
      return std::string(info.param.name);
    });

// ---------------------------------------------------------------------------------------------
// smaps_rollup

TEST(ParseSmapsRollupTest, ReadsPssAndItsParts) {
  auto rollup = ParseSmapsRollup(kSmapsRollup, "/proc/27196/smaps_rollup");
  ASSERT_TRUE(rollup.has_value()) << rollup.error().ToString();
  EXPECT_EQ(rollup->pss_bytes, 283 * kKiB);
  EXPECT_EQ(rollup->rss_bytes, 1760 * kKiB);
  EXPECT_EQ(rollup->pss_anon_bytes, 116 * kKiB);
  EXPECT_EQ(rollup->pss_file_bytes, 167 * kKiB);
  EXPECT_EQ(rollup->pss_shmem_bytes, 0);
  EXPECT_EQ(rollup->swap_bytes, 0);
  EXPECT_EQ(rollup->swap_pss_bytes, 0);
}

TEST(ParseSmapsRollupTest, OlderKernelsHaveNoPssParts) {
  auto rollup = ParseSmapsRollup(kOldSmapsRollup, "/proc/27196/smaps_rollup");
  ASSERT_TRUE(rollup.has_value()) << rollup.error().ToString();
  EXPECT_EQ(rollup->pss_bytes, 283 * kKiB);
  EXPECT_FALSE(rollup->pss_anon_bytes.has_value());
  EXPECT_FALSE(rollup->pss_file_bytes.has_value());
}

TEST(ParseSmapsRollupTest, MissingOrMalformedPssIsAnError) {
  auto missing = ParseSmapsRollup(kCatStatus, "/proc/1/smaps_rollup");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kParse);
  EXPECT_THAT(missing.error().message,
              AllOf(StartsWith("/proc/1/smaps_rollup: "), HasSubstr("no \"Pss:\" line")));

  auto malformed = ParseSmapsRollup("Rss:  10 kB\nPss:  x kB\n", "/proc/1/smaps_rollup");
  ASSERT_FALSE(malformed.has_value());
  EXPECT_THAT(malformed.error().message, HasSubstr("field Pss is 'x kB'"));
}

// ---------------------------------------------------------------------------------------------
// cgroup, memory.current, children

TEST(ParseCgroupV2PathTest, FindsTheUnifiedEntry) {
  struct Case {
    const char* text;
    const char* want;
  };
  const Case cases[] = {
      {kHybridCgroup, "/"},
      // A pure cgroup v2 system under systemd.
      {"0::/user.slice/user-1000.slice/session-2.scope\n",
       "/user.slice/user-1000.slice/session-2.scope"},
      {"0::/system.slice/app:with:colons.service", "/system.slice/app:with:colons.service"},
  };
  for (const Case& c : cases) {
    auto path = ParseCgroupV2Path(c.text, "/proc/9/cgroup");
    ASSERT_TRUE(path.has_value()) << path.error().ToString();
    EXPECT_EQ(*path, c.want);
  }
}

TEST(ParseCgroupV2PathTest, OnlyV1IsNotFoundAndGarbageIsAParseError) {
  std::string v1_only = kHybridCgroup;
  v1_only.resize(v1_only.find("0::/"));
  auto none = ParseCgroupV2Path(v1_only, "/proc/9/cgroup");
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(none.error().message, HasSubstr("no cgroup v2 entry"));

  auto garbage = ParseCgroupV2Path("memory\n", "/proc/9/cgroup");
  ASSERT_FALSE(garbage.has_value());
  EXPECT_EQ(garbage.error().code, ErrorCode::kParse);
  EXPECT_THAT(garbage.error().message,
              AllOf(StartsWith("/proc/9/cgroup: "), HasSubstr("line 1 is 'memory'"),
                    HasSubstr("expected \"ID:CONTROLLERS:PATH\"")));
}

TEST(ParseMemoryCurrentTest, ReadsBytes) {
  auto bytes = ParseMemoryCurrent("73400320\n", "/sys/fs/cgroup/a/memory.current");
  ASSERT_TRUE(bytes.has_value()) << bytes.error().ToString();
  EXPECT_EQ(*bytes, 73400320);

  for (const char* bad : {"", "max\n", "-5\n", "12 kB\n"}) {
    auto parsed = ParseMemoryCurrent(bad, "/sys/fs/cgroup/a/memory.current");
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_THAT(parsed.error().message, AllOf(StartsWith("/sys/fs/cgroup/a/memory.current: "),
                                              HasSubstr("expected a number of bytes")));
  }
}

TEST(ParseChildrenTest, ReadsSpaceSeparatedPids) {
  // The kernel ends the list with a space; a thread without children has an empty file.
  EXPECT_THAT(*ParseChildren("27255 ", "c"), ElementsAre(27255));
  EXPECT_THAT(*ParseChildren("12 34 56 ", "c"), ElementsAre(12, 34, 56));
  EXPECT_THAT(*ParseChildren("", "c"), ElementsAre());
  auto bad = ParseChildren("12 x3 ", "/proc/1/task/1/children");
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message,
              AllOf(StartsWith("/proc/1/task/1/children: "), HasSubstr("'x3'")));
}

// ---------------------------------------------------------------------------------------------
// fd link targets

struct FdCase {
  const char* link;
  FdKind kind;
  const char* name;
  std::optional<uint64_t> inode;
  bool deleted;
};

class ClassifyFdTargetTest : public ::testing::TestWithParam<FdCase> {};

TEST_P(ClassifyFdTargetTest, Classifies) {
  const FdCase& c = GetParam();
  FdTarget target = ClassifyFdTarget(c.link);
  EXPECT_EQ(FdKindName(target.kind), FdKindName(c.kind)) << c.link;
  EXPECT_EQ(target.name, c.name) << c.link;
  EXPECT_EQ(target.inode, c.inode) << c.link;
  EXPECT_EQ(target.deleted, c.deleted) << c.link;
}

// Every link target below was read from /proc/self/fd of a live process.
INSTANTIATE_TEST_SUITE_P(
    Captured, ClassifyFdTargetTest,
    ::testing::Values(
        FdCase{"socket:[173307]", FdKind::kSocket, "", 173307, false},
        FdCase{"pipe:[173309]", FdKind::kPipe, "", 173309, false},
        FdCase{"anon_inode:[eventpoll]", FdKind::kAnonInode, "eventpoll", std::nullopt, false},
        FdCase{"anon_inode:[eventfd]", FdKind::kAnonInode, "eventfd", std::nullopt, false},
        FdCase{"anon_inode:[timerfd]", FdKind::kAnonInode, "timerfd", std::nullopt, false},
        FdCase{"anon_inode:inotify", FdKind::kAnonInode, "inotify", std::nullopt, false},
        FdCase{"/dev/null", FdKind::kDevice, "/dev/null", std::nullopt, false},
        FdCase{"/tmp/bash_jobs.0/c8f5f21c9a66/stdout", FdKind::kFile,
               "/tmp/bash_jobs.0/c8f5f21c9a66/stdout", std::nullopt, false},
        FdCase{"/tmp/lg deleted yo6of8og (deleted)", FdKind::kFile, "/tmp/lg deleted yo6of8og",
               std::nullopt, true},
        FdCase{"/memfd:lg-arena (deleted)", FdKind::kMemfd, "lg-arena", std::nullopt, true},
        FdCase{"net:[4026531833]", FdKind::kOther, "net:[4026531833]", std::nullopt, false},
        // Malformed forms fall back to kOther with the text, never to a wrong socket count.
        FdCase{"socket:[12a]", FdKind::kOther, "socket:[12a]", std::nullopt, false},
        FdCase{"pipe:[", FdKind::kOther, "pipe:[", std::nullopt, false},
        FdCase{"", FdKind::kOther, "", std::nullopt, false}));

// ---------------------------------------------------------------------------------------------
// net/tcp, tcp6, udp, unix

TEST(ParseNetInetTest, DecodesAddressesStatesAndInodes) {
  auto rows = ParseNetInet(kNetTcp, "tcp", "/proc/9/net/tcp");
  ASSERT_TRUE(rows.has_value()) << rows.error().ToString();
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ((*rows)[0].local_address, "127.0.0.1:60845");
  EXPECT_EQ((*rows)[0].remote_address, "0.0.0.0:0");
  EXPECT_EQ((*rows)[0].state, "LISTEN");
  EXPECT_EQ((*rows)[0].inode, 222420u);
  EXPECT_EQ(DescribeSocket((*rows)[0]), "tcp 127.0.0.1:60845 LISTEN");
  EXPECT_EQ(DescribeSocket((*rows)[1]), "tcp 127.0.0.1:60845 -> 127.0.0.1:49524 ESTABLISHED");
  EXPECT_EQ((*rows)[1].inode, 222422u);
  EXPECT_EQ(DescribeSocket((*rows)[2]), "tcp 127.0.0.1:49524 -> 127.0.0.1:60845 ESTABLISHED");
  EXPECT_EQ((*rows)[3].state, "TIME_WAIT");
  EXPECT_EQ((*rows)[3].inode, 0u);
  EXPECT_EQ((*rows)[3].remote_address, "127.0.0.1:38076");
}

TEST(ParseNetInetTest, DecodesIpv6AndUdp) {
  auto tcp6 = ParseNetInet(kNetTcp6, "tcp6", "/proc/9/net/tcp6");
  ASSERT_TRUE(tcp6.has_value()) << tcp6.error().ToString();
  ASSERT_EQ(tcp6->size(), 3u);
  EXPECT_EQ(DescribeSocket((*tcp6)[0]), "tcp6 [::1]:33761 LISTEN");
  EXPECT_EQ(DescribeSocket((*tcp6)[1]), "tcp6 [::1]:41656 -> [::1]:33761 ESTABLISHED");
  EXPECT_EQ((*tcp6)[2].inode, 222384u);

  auto udp = ParseNetInet(kNetUdp, "udp", "/proc/9/net/udp");
  ASSERT_TRUE(udp.has_value()) << udp.error().ToString();
  ASSERT_EQ(udp->size(), 1u);
  EXPECT_EQ(DescribeSocket((*udp)[0]), "udp 127.0.0.1:41708 UNCONN");
  EXPECT_EQ((*udp)[0].inode, 222385u);
}

TEST(ParseNetInetTest, MalformedRowsNameTheLine) {
  std::string short_row = std::string(kNetUdp).substr(0, std::string(kNetUdp).find('\n') + 1) +
                          "11039: 0100007F:A2EC 00000000:0000 07\n";
  auto rows = ParseNetInet(short_row, "udp", "/proc/9/net/udp");
  ASSERT_FALSE(rows.has_value());
  EXPECT_THAT(rows.error().message,
              AllOf(StartsWith("/proc/9/net/udp: line 2 "), HasSubstr("expected at least 10")));

  auto bad_address = ParseNetInet(
      "   0: 7F:EDAD 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 222420 1\n", "tcp",
      "/proc/9/net/tcp");
  ASSERT_FALSE(bad_address.has_value());
  EXPECT_THAT(bad_address.error().message,
              AllOf(HasSubstr("line 1 has address '7F:EDAD'"), HasSubstr("expected 8 hex digits")));
}

TEST(ParseNetUnixTest, ReadsTypeStateAndPath) {
  auto rows = ParseNetUnix(kNetUnix, "/proc/9/net/unix");
  ASSERT_TRUE(rows.has_value()) << rows.error().ToString();
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].inode, 222386u);
  EXPECT_EQ(DescribeSocket((*rows)[0]), "unix stream unconnected /tmp/lg sampler.sock");
  EXPECT_EQ(DescribeSocket((*rows)[1]), "unix stream unconnected @lg-abstract");
  EXPECT_EQ(DescribeSocket((*rows)[2]), "unix stream connected");
  EXPECT_EQ((*rows)[2].inode, 586u);

  auto bad =
      ParseNetUnix("Num RefCount\n00000000c34c2b00: 00000003 00000000\n", "/proc/9/net/unix");
  ASSERT_FALSE(bad.has_value());
  EXPECT_THAT(bad.error().message,
              AllOf(StartsWith("/proc/9/net/unix: line 2 "), HasSubstr("expected \"Num RefCount")));
}

}  // namespace
}  // namespace leakgate::harness
