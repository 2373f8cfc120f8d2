#include "base/units.h"

#include <gtest/gtest.h>

namespace leakgate {
namespace {

TEST(FormatSizeTest, WholeUnitsHaveNoDecimalsAndFractionsOne) {
  EXPECT_EQ(FormatSize(0), "0 B");
  EXPECT_EQ(FormatSize(512), "512 B");
  EXPECT_EQ(FormatSize(1536), "1.5 KiB");
  EXPECT_EQ(FormatSize(2 << 20), "2 MiB");
  EXPECT_EQ(FormatSize(-1536), "-1.5 KiB");
  EXPECT_EQ(FormatSize(int64_t{3} << 30), "3 GiB");
}

TEST(ParseSizeTest, ReadsWhatFormatSizeWrites) {
  for (int64_t bytes : {int64_t{0}, int64_t{512}, int64_t{1536}, int64_t{2} << 20}) {
    auto parsed = ParseSize(FormatSize(bytes));
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(*parsed, bytes);
  }
  EXPECT_EQ(*ParseSize("256KiB"), 256 * 1024);
  EXPECT_EQ(*ParseSize(" 4096 "), 4096);
}

TEST(ParseSizeTest, BadSizesSayWhatASizeLooksLike) {
  auto decimal = ParseSize("2MB");
  ASSERT_FALSE(decimal);
  EXPECT_EQ(decimal.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(decimal.error().message.find("write \"MiB\""), std::string::npos);
  auto fraction = ParseSize("1.5");
  ASSERT_FALSE(fraction);
  EXPECT_NE(fraction.error().message.find("whole number"), std::string::npos);
  EXPECT_FALSE(ParseSize("-1KiB"));
  EXPECT_FALSE(ParseSize(""));
}

TEST(FixedTest, RoundsToTheDigitsAsked) {
  EXPECT_EQ(Fixed(0.456, 2), "0.46");
  EXPECT_EQ(Fixed(2, 1), "2.0");
  EXPECT_EQ(Fixed(-0.04, 1), "-0.0");
  EXPECT_EQ(FormatSeconds(0.5), "0.50 s");
}

TEST(ExcerptTest, LongTextEndsInAnEllipsisWithinTheLimit) {
  EXPECT_EQ(Excerpt("short"), "short");
  const std::string long_text(200, 'x');
  const std::string cut = Excerpt(long_text);
  EXPECT_EQ(cut.size(), 120u);
  EXPECT_TRUE(cut.ends_with("..."));
  EXPECT_EQ(Excerpt("abcdefgh", 5), "ab...");
}

TEST(ExcerptTest, ControlCharactersKeptSpacedOrEscaped) {
  EXPECT_EQ(Excerpt("a\nb"), "a\nb");
  EXPECT_EQ(Excerpt("a\nb\tc", 120, ControlChars::kSpace), "a b c");
  EXPECT_EQ(Excerpt("a\nb\tc\x01", 120, ControlChars::kEscape), "a\\nb\\tc\\x01");
  // The limit counts the text's own characters, not the escapes.
  EXPECT_EQ(Excerpt("\n\n\n\n\n\n", 5, ControlChars::kEscape), "\\n\\n...");
}

TEST(FormatSecondsShortTest, ShortestFormWithTheDigitsAsked) {
  EXPECT_EQ(FormatSecondsShort(0.3), "0.3 s");
  EXPECT_EQ(FormatSecondsShort(120), "120 s");
  EXPECT_EQ(FormatSecondsShort(0.012345, 3), "0.0123 s");
}

}  // namespace
}  // namespace leakgate
