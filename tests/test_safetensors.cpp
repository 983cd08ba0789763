// safetensors: round trips, every format rule the reader enforces, and files
// written by an independent writer (scripts/make_fixtures.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <unistd.h>

#include "fixtures.h"
#include "io/safetensors.h"

using namespace st;
namespace fs = std::filesystem;

namespace {

// A private scratch folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("sparsetrain-safetensors-" + std::to_string(::getpid()) +
                                        "-" + std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A file image from a header text and a data section; `declared` overrides the
// header length field.
std::vector<uint8_t> image(const std::string& header, std::size_t data_bytes,
                           uint64_t declared = std::numeric_limits<uint64_t>::max()) {
  const uint64_t n = declared == std::numeric_limits<uint64_t>::max() ? header.size() : declared;
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

SafetensorsReader parse(const std::string& header, std::size_t data_bytes) {
  return SafetensorsReader::parse(image(header, data_bytes), "bad.safetensors");
}

// A header entry for a tensor of `dtype` and `shape` at [begin, end).
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  uint64_t begin, uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]}";
}

// A header object from entries (appends, not operator+, to avoid a GCC 12 false
// positive of -Wrestrict).
std::string object(const std::string& first, const std::string& second = "") {
  std::string s = "{";
  s += first;
  if (!second.empty()) {
    s += ",";
    s += second;
  }
  s += "}";
  return s;
}

void require_rejected(const std::string& header, std::size_t data_bytes, const std::string& tensor,
                      const std::string& reason) {
  INFO("header " << header);
  REQUIRE_THROWS_AS(parse(header, data_bytes), SafetensorsError);
  REQUIRE_THROWS_WITH(parse(header, data_bytes), Catch::Contains("bad.safetensors") &&
                                                     Catch::Contains(tensor) &&
                                                     Catch::Contains(reason));
}

}  // namespace

TEST_CASE("safetensors round trip keeps names - dtypes - shapes - values and metadata",
          "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  Tensor w =
      Tensor::from_vector(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f}, {2, 3});
  Tensor d = Tensor::from_vector(std::vector<double>{0.1, -1e300}, {2});
  Tensor labels = Tensor::from_vector(std::vector<int32_t>{3, -4, 2147483647}, {3});
  Tensor count = Tensor::from_vector(std::vector<float>{12345.0f}, {});  // a scalar
  Tensor empty({0, 4});
  write_safetensors(path,
                    {{"layer.weight", w},
                     {"d", d},
                     {"labels", labels},
                     {"bn.num_batches_tracked", count},
                     {"empty", empty}},
                    {{"format", "pt"}, {"epoch", "7"}}, {"bn.num_batches_tracked"});
  // Only the final file remains: the temporary one was renamed into place.
  REQUIRE(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator{}) == 1);

  std::ifstream raw(path, std::ios::binary);
  uint64_t n = 0;
  raw.read(reinterpret_cast<char*>(&n), 8);
  CHECK((8 + n) % 8 == 0);

  const SafetensorsReader r = SafetensorsReader::load(path);
  CHECK(r.names() ==
        std::vector<std::string>{"layer.weight", "d", "labels", "bn.num_batches_tracked", "empty"});
  CHECK(r.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"epoch", "7"}});
  CHECK(r.entry("layer.weight").dtype == "F32");
  CHECK(r.entry("d").dtype == "F64");
  CHECK(r.entry("labels").dtype == "I32");
  CHECK(r.entry("bn.num_batches_tracked").dtype == "I64");
  CHECK(r.entry("bn.num_batches_tracked").shape.empty());

  const Tensor w2 = r.get("layer.weight");
  CHECK(w2.dtype() == DType::F32);
  CHECK(w2.shape() == Shape{2, 3});
  CHECK(w2.to_vector_f32() == w.to_vector_f32());
  CHECK(r.get("d").to_vector_f64() == d.to_vector_f64());
  CHECK(r.get("labels").data<int32_t>()[2] == 2147483647);
  const Tensor c = r.get("bn.num_batches_tracked");
  CHECK(c.dtype() == DType::I32);
  CHECK(c.data<int32_t>()[0] == 12345);
  CHECK(r.get_f32("labels").to_vector_f32() == std::vector<float>{3.0f, -4.0f, 2147483648.0f});
  CHECK(r.get("empty").shape() == Shape{0, 4});

  // Overwriting replaces the file whole.
  write_safetensors(path, {{"x", d}});
  CHECK(SafetensorsReader::load(path).names() == std::vector<std::string>{"x"});
}

TEST_CASE("safetensors writer rejects what it cannot store", "[safetensors]") {
  Tensor t = Tensor::from_vector(std::vector<float>{1.5f}, {1});
  CHECK_THROWS_WITH(serialize_safetensors({{"n", t}}, {}, {"n"}),
                    Catch::Contains("'n'") && Catch::Contains("not an integer"));
  CHECK_THROWS_WITH(serialize_safetensors({{"a", t}, {"a", t}}), Catch::Contains("'a'"));
  CHECK_THROWS_AS(serialize_safetensors({{"__metadata__", t}}), SafetensorsError);
  CHECK_THROWS_WITH(serialize_safetensors({{"a", t}}, {}, {"b"}), Catch::Contains("'b'"));
  CHECK_THROWS_WITH(write_safetensors("/nonexistent-folder/x.safetensors", {{"a", t}}),
                    Catch::Contains("/nonexistent-folder/x.safetensors"));
}

TEST_CASE("safetensors reader enforces the format's rules", "[safetensors]") {
  const std::string a = entry("a", "F32", "[2]", 0, 8);
  // Sanity: the well-formed baseline parses.
  REQUIRE(parse(object(a, entry("b", "I64", "[1]", 8, 16)), 16).names().size() == 2);

  SECTION("gaps, overlaps and offsets out of range") {
    require_rejected(object(a, entry("b", "F32", "[2]", 12, 20)), 20, "'b'", "gap");
    require_rejected(object(a, entry("b", "F32", "[2]", 4, 12)), 12, "'b'", "overlaps");
    require_rejected(object(entry("b", "F32", "[2]", 4, 12)), 12, "'b'", "gap");
    require_rejected(object(a), 4, "'a'", "truncated");
    require_rejected(object(a), 12, "'a'", "trailing");
    require_rejected(object(entry("a", "F32", "[2]", 8, 0)), 8, "'a'", "begin after end");
    require_rejected(object(entry("a", "F32", "[3]", 0, 8)), 8, "'a'", "needs 12");
  }
  SECTION("dtypes, shapes and fields") {
    require_rejected(object(entry("q", "F8_E4M3", "[2]", 0, 2)), 2, "'q'", "not supported");
    require_rejected(object(entry("q", "Q4", "[2]", 0, 2)), 2, "'q'", "not supported");
    require_rejected(object(entry("s", "F32", "[-2]", 0, 8)), 8, "'s'", "non-negative");
    require_rejected(object(entry("s", "F32", "[2.0]", 0, 8)), 8, "'s'", "non-negative");
    require_rejected(object(entry("s", "F32", "[4294967296,4294967296,16]", 0, 8)), 8, "'s'",
                     "too large");
    require_rejected(R"({"m":{"dtype":"F32","shape":[1]}})", 4, "'m'", "data_offsets");
    require_rejected(R"({"m":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4, "'m'",
                     "unexpected field 'x'");
    require_rejected(R"({"m":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4, "'m'", "dtype");
    require_rejected(R"({"m":[1,2]})", 0, "'m'", "not a JSON object");
  }
  SECTION("duplicate keys") {
    require_rejected(object(a, a), 8, "duplicate key \"a\"", "header: a:");
    require_rejected(R"({"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8,
                     "duplicate key \"dtype\"", "header: a.dtype:");
  }
  SECTION("the header itself") {
    require_rejected("{" + a, 8, "", "not valid JSON");
    require_rejected("[1,2]", 0, "", "start with '{'");
    require_rejected(" {}", 0, "", "start with '{'");
    require_rejected("{\"a\xff\":1}", 0, "", "not valid JSON");
    require_rejected(R"({"__metadata__":{"k":1}})", 0, "__metadata__", "not a string");
    require_rejected(R"({"__metadata__":"x"})", 0, "__metadata__", "not a JSON object");
    // Header length fields that are too large or run past the end.
    CHECK_THROWS_WITH(SafetensorsReader::parse(image("{}", 0, 200'000'000), "big.safetensors"),
                      Catch::Contains("big.safetensors") && Catch::Contains("exceeds the limit"));
    CHECK_THROWS_WITH(SafetensorsReader::parse(image("{}", 0, 3), "short.safetensors"),
                      Catch::Contains("short.safetensors") && Catch::Contains("truncated"));
    CHECK_THROWS_WITH(SafetensorsReader::parse({1, 2, 3}, "tiny.safetensors"),
                      Catch::Contains("tiny.safetensors") && Catch::Contains("too short"));
  }
  SECTION("an empty file with only metadata is valid") {
    const SafetensorsReader r = parse(R"({"__metadata__":{"k":"v"}}    )", 0);
    CHECK(r.names().empty());
    CHECK(r.metadata().at("k") == "v");
  }
}

TEST_CASE("a truncated file on disk is rejected with its path", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.file("cut.safetensors");
  write_safetensors(path, {{"w", Tensor({64})}});
  fs::resize_file(path, fs::file_size(path) - 4);
  CHECK_THROWS_WITH(SafetensorsReader::load(path), Catch::Contains(path) &&
                                                       Catch::Contains("'w'") &&
                                                       Catch::Contains("truncated"));
  CHECK_THROWS_WITH(SafetensorsReader::load(dir.file("missing.safetensors")),
                    Catch::Contains("missing.safetensors"));
}

TEST_CASE("half and bfloat16 decode exactly", "[safetensors]") {
  CHECK(half_to_float(0x3C00) == 1.0f);
  CHECK(half_to_float(0xC000) == -2.0f);
  CHECK(half_to_float(0x7BFF) == 65504.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(std::signbit(half_to_float(0x8000)));
  CHECK(std::isinf(half_to_float(0x7C00)));
  CHECK(std::isnan(half_to_float(0x7E00)));
  CHECK(bfloat16_to_float(0x3F80) == 1.0f);
  CHECK(bfloat16_to_float(0xC020) == -2.5f);
}

TEST_CASE("files from the independent Python writer read back exactly", "[safetensors]") {
  const SafetensorsReader r = test::load_fixture("safetensors_dtypes.safetensors");
  CHECK(r.metadata().at("format") == "pt");
  CHECK(r.metadata().at("note") == "gr\xC3\xB6\xC3\x9F\x65 \xE2\x9C\x93");
  // Value i at flat index i, negated for odd i.
  auto signed_ramp = [](int n) {
    std::vector<double> v;
    for (int i = 0; i < n; ++i) v.push_back(i % 2 ? -i : i);
    return v;
  };
  for (const char* name : {"f64", "f32", "f16", "i64", "i32", "i16", "i8"}) {
    INFO(name);
    const Tensor t = r.get(name);
    CHECK(t.to_vector_f64() == signed_ramp(static_cast<int>(t.numel())));
  }
  CHECK(r.get("f64").dtype() == DType::F64);
  CHECK(r.get("f64").shape() == Shape{2, 3});
  CHECK(r.get("f32").shape() == Shape{3, 2});
  CHECK(r.get("f16").dtype() == DType::F32);
  CHECK(r.get("i64").dtype() == DType::I32);
  CHECK(r.get("i8").dtype() == DType::I32);
  CHECK(r.get("bf16").to_vector_f64() ==
        std::vector<double>{1.0, -2.5, 0.15625, std::ldexp(1.0, 100)});
  CHECK(r.get("u8").to_vector_f64() == std::vector<double>{250, 251, 252});
  CHECK(r.get("bool").to_vector_f64() == std::vector<double>{1, 0, 1});
  CHECK(r.get("scalar").shape().empty());
  CHECK(r.get("scalar").to_vector_f32() == std::vector<float>{7.5f});
  CHECK(r.get("empty").shape() == Shape{0, 3});
  CHECK(r.get_f64("i64_big").to_vector_f64() == std::vector<double>{std::ldexp(1.0, 40)});
  CHECK_THROWS_WITH(r.get("i64_big"),
                    Catch::Contains("'i64_big'") && Catch::Contains("does not fit in I32"));
  CHECK_THROWS_WITH(r.get("nope"), Catch::Contains("'nope'") && Catch::Contains("not in the file"));
}

TEST_CASE("the network fixture follows its key contract", "[safetensors]") {
  const SafetensorsReader r = test::load_fixture("net_step.safetensors");
  CHECK(r.get("input").shape() == Shape{4, 3, 12, 12});
  const Tensor labels = r.get("labels");
  REQUIRE(r.entry("labels").dtype == "I32");
  for (int i = 0; i < 4; ++i)
    CHECK((labels.data<int32_t>()[i] >= 0 && labels.data<int32_t>()[i] < 5));
  CHECK(r.get("logits").shape() == Shape{4, 5});
  CHECK(r.get("eval_logits").shape() == Shape{4, 5});
  CHECK(r.get("loss").shape() == Shape{1});
  const std::vector<std::pair<std::string, Shape>> params = {
      {"conv1.weight", {8, 3, 3, 3}},   {"bn1.weight", {8}},  {"bn1.bias", {8}},
      {"conv2.weight", {12, 8, 3, 3}},  {"bn2.weight", {12}}, {"bn2.bias", {12}},
      {"conv3.weight", {16, 12, 3, 3}}, {"bn3.weight", {16}}, {"bn3.bias", {16}},
      {"fc.weight", {5, 16}},           {"fc.bias", {5}}};
  for (const auto& [key, shape] : params) {
    INFO(key);
    CHECK(r.get("param." + key).shape() == shape);
    CHECK(r.get("grad." + key).shape() == shape);
  }
  for (const char* bn : {"bn1", "bn2", "bn3"}) {
    const std::string b = bn;
    for (float v : r.get_f32("buffer." + b + ".running_mean").to_vector_f32()) CHECK(v == 0.0f);
    for (float v : r.get_f32("buffer." + b + ".running_var").to_vector_f32()) CHECK(v == 1.0f);
    CHECK(r.has("after." + b + ".running_mean"));
    CHECK(r.has("after." + b + ".running_var"));
  }
  CHECK(r.names().size() == 2 + 2 * params.size() + 4 * 3 + 3);
}
