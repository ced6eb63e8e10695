// JWT verification never accepts a token that was not signed with the
// secret: whatever the bytes, an accepted token is exactly the header and
// payload it carries followed by their HMAC-SHA256 under the secret, with an
// HS256 header, an object payload and an exp in the future. A token signed
// with another key is always refused.
#include "metrics_agent.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace md = metrics_agent::detail;

namespace {

const std::string kSecret = "fuzz-secret";  // the seeds are signed with it
constexpr std::int64_t kNow = 1700000000;

void check_accepted(const std::string& secret, const std::string& token, const md::JwtResult& r) {
  if (!r.error.empty()) std::abort();
  const std::size_t dot2 = token.rfind('.');
  if (dot2 == std::string::npos) std::abort();
  const std::string signing_input = token.substr(0, dot2);
  const auto mac = md::hmac_sha256(secret, signing_input);
  if (token.substr(dot2 + 1) != md::base64url_encode(md::as_bytes(mac))) std::abort();
  const std::size_t dot1 = token.find('.');
  auto header = md::base64url_decode(token.substr(0, dot1));
  if (!header) std::abort();
  picojson::value h;
  if (!md::parse_json(h, *header).empty() || !h.is<picojson::object>()) std::abort();
  const auto& alg = h.get<picojson::object>().at("alg");
  if (!alg.is<std::string>() || alg.get<std::string>() != "HS256") std::abort();
  if (r.exp <= kNow - 1) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  const int mode = fdp.ConsumeIntegralInRange(0, 3);
  std::string other = fdp.ConsumeRandomLengthString(64);
  const std::string rest = fdp.ConsumeRemainingBytesAsString();

  // Any bytes as a token.
  md::JwtResult r = md::jwt_verify(kSecret, rest, kNow);
  if (r.ok) check_accepted(kSecret, rest, r);
  else if (r.error.empty()) std::abort();

  // The bytes as a payload, signed: with the secret it is judged on its
  // claims alone; with any other key it is refused.
  if (mode == 1 || mode == 3) {
    const std::string good = md::jwt_sign(kSecret, rest);
    r = md::jwt_verify(kSecret, good, kNow);
    if (r.ok) check_accepted(kSecret, good, r);
    if (other == kSecret) other += 'x';
    const std::string forged = md::jwt_sign(other, rest);
    if (md::jwt_verify(kSecret, forged, kNow).ok) std::abort();
    // Flipping one character of a good token's signature or body never passes.
    if (r.ok && !other.empty()) {
      std::string t = good;
      const std::size_t at = static_cast<unsigned char>(other[0]) * t.size() / 256;
      t[at] = t[at] == 'A' ? 'B' : 'A';
      if (md::jwt_verify(kSecret, t, kNow).ok) std::abort();
    }
  }
  // With the key the fuzzer chose as the secret (empty means auth is off).
  if (mode == 2) {
    r = md::jwt_verify(other, rest, kNow);
    if (r.ok) {
      if (other.empty()) std::abort();
      check_accepted(other, rest, r);
    }
  }
  return 0;
}
