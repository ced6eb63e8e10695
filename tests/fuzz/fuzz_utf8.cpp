// The incremental UTF-8 validator against a whole-buffer reference written
// here from RFC 3629 (decode each code point, then judge it): any split of
// the input must give the reference's verdict, feed() must fail in the piece
// that holds the first octet no continuation could make valid, and the
// U+FFFD substitution must always give valid text.
#include "metrics_agent.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace md = metrics_agent::detail;

namespace {

enum class Ref { Valid, Invalid, Truncated };

// Whole-buffer reference. Truncated: valid up to a last sequence that is
// cut short; `tail` is where that sequence starts.
Ref reference(const std::string& s, std::size_t* tail = nullptr) {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 4, cp = c & 0x07;
    } else {
      return Ref::Invalid;
    }
    for (std::size_t k = 1; k < n; ++k) {
      if (i + k >= s.size()) {
        if (tail) *tail = i;
        return Ref::Truncated;
      }
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return Ref::Invalid;
      cp = (cp << 6) | (d & 0x3f);
    }
    static const std::uint32_t min_for_length[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_length[n]) return Ref::Invalid;           // overlong
    if (cp >= 0xd800 && cp <= 0xdfff) return Ref::Invalid;     // surrogate
    if (cp > 0x10ffff) return Ref::Invalid;                    // beyond Unicode
    i += n;
  }
  return Ref::Valid;
}

// Whether some continuation makes `prefix` valid: only a cut-short last
// sequence needs completing, and trying every second byte (the only one
// with a restricted range) followed by 0x80s decides it.
bool can_become_valid(const std::string& prefix) {
  std::size_t tail = 0;
  Ref r = reference(prefix, &tail);
  if (r != Ref::Truncated) return r == Ref::Valid;
  const std::string seq = prefix.substr(tail);
  for (std::size_t extra = 1; extra <= 3; ++extra)
    for (int b = 0x80; b <= 0xbf; ++b) {
      std::string t = seq;
      t += char(seq.size() == 1 ? b : 0x80);
      if (seq.size() > 1) t.back() = char(0x80 + (b & 0x3f));
      t.append(extra - 1, '\x80');
      if (reference(t) == Ref::Valid) return true;
    }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  std::vector<std::size_t> cuts;
  for (int i = fdp.ConsumeIntegralInRange(0, 12); i > 0; --i)
    cuts.push_back(fdp.ConsumeIntegralInRange<std::size_t>(1, 40));
  const std::string s = fdp.ConsumeRemainingBytesAsString();
  const Ref whole = reference(s);

  if (md::valid_utf8(s) != (whole == Ref::Valid)) std::abort();

  // The first octet after which the text cannot become valid (the prefix
  // property is monotone, so a binary search finds it).
  std::size_t lo = 0, hi = s.size() + 1;  // can_become_valid(s[0,lo)) holds
  if (can_become_valid(s)) {
    lo = s.size();
  } else {
    while (hi - lo > 1) {
      std::size_t mid = (lo + hi) / 2;
      if (can_become_valid(s.substr(0, mid))) lo = mid; else hi = mid;
    }
  }
  const bool never_valid = lo < s.size();  // then s[lo] is the first bad octet

  md::Utf8Validator v;
  std::size_t pos = 0, k = 0;
  bool failed = false;
  while (pos < s.size()) {
    std::size_t n = cuts.empty() ? 1 : cuts[k++ % cuts.size()];
    n = std::min(n, s.size() - pos);
    const bool ok = v.feed(s.data() + pos, n);
    const bool holds_bad = never_valid && lo >= pos && lo < pos + n;
    if (ok == holds_bad) std::abort();  // must fail exactly in that piece
    pos += n;
    if (!ok) {
      failed = true;
      break;
    }
  }
  if (!failed && v.complete() != (whole == Ref::Valid)) std::abort();
  if (failed && v.complete()) std::abort();

  const std::string fixed = md::utf8_substituted(s);
  if (reference(fixed) != Ref::Valid) std::abort();
  if (whole == Ref::Valid && fixed != s) std::abort();
  return 0;
}
