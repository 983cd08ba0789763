// The bad-input battery (docs/reliability.md): hostile files and flags, one case per class of
// failure, each run through the real binary. Every case checks the exit code (2: the user's
// file or flag; 1: a runtime failure such as a full disk), that the message names the file or
// flag, that no raw library text leaks, and that the run directory / output is unchanged.
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/image_folder.h"
#include "io/file_write.h"
#include "io/safetensors.h"
#include "io/validate.h"
#include "run_helpers.h"

namespace st::test {
namespace {

// Decodes an image file held in a byte string, as the image-folder reader would.
data::DecodedImage decode_bytes(const std::string& bytes, const std::string& name) {
  return data::decode_image_bytes(std::vector<uint8_t>(bytes.begin(), bytes.end()), 3, name);
}

namespace fs = std::filesystem;
using json = nlohmann::json;

// Every regular file under `dir` with its bytes, and every folder: equal snapshots mean the
// run directory was left as it was.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    // The run lock's file stays by design (docs/reliability.md); it holds nothing.
    if (e.path().filename() == "run.lock") continue;
    if (e.is_regular_file()) {
      std::ifstream in(e.path(), std::ios::binary);
      out[rel] = std::string(std::istreambuf_iterator<char>(in), {});
    } else {
      out[rel] = e.is_directory() ? "<dir>" : "<other>";
    }
  }
  return out;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string be32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

// A trained one-epoch run, made once for the whole battery and copied into each case.
const fs::path& trained_run() {
  static ScratchDir dir("bad-inputs-fixture");
  static const fs::path run = [] {
    const fs::path r = fs::path(dir.str()) / "run";
    const ProcessResult p =
        run_sparsetrain({"--config", test_config("synthetic_tiny.json"), "--set",
                         "training.epochs=1", "--out", r.string(), "--quiet"},
                        dir / "train.log");
    REQUIRE(p.exit_code == 0);
    return r;
  }();
  return run;
}

// The checkpoint's tensors and metadata JSON, to write a modified copy.
struct CheckpointParts {
  std::vector<std::pair<std::string, Tensor>> tensors;
  json meta;
  std::set<std::string> int64;
};

CheckpointParts read_parts(const std::string& path) {
  const SafetensorsReader r = SafetensorsReader::load(path);
  CheckpointParts p;
  for (const std::string& n : r.names()) {
    if (r.entry(n).dtype == "I64") p.int64.insert(n);
    p.tensors.emplace_back(n, r.entry(n).dtype == "I64" ? r.get_f64(n) : r.get(n));
  }
  p.meta = json::parse(r.metadata().at("sparsetrain"));
  return p;
}

void write_parts(const std::string& path, const CheckpointParts& p, const std::string& meta_text) {
  write_safetensors(path, p.tensors, {{"sparsetrain", meta_text}}, p.int64);
}

struct Case {
  std::string name;
  // Prepares the inputs in `dir` (holding a copy of the trained run in dir/run) and returns
  // the command's arguments.
  std::function<std::vector<std::string>(const fs::path& dir)> prepare;
  int exit_code;
  std::vector<std::string> message;  // substrings the output must hold
  std::string unchanged = "run";     // the folder under dir that must stay as it was
};

std::string last_ckpt(const fs::path& dir) {
  return (dir / "run" / "checkpoints" / "last.safetensors").string();
}

std::vector<Case> cases() {
  std::vector<Case> c;
  // --- Checkpoints (io/checkpoint.cpp, io/safetensors.cpp) ---
  c.push_back(
      {"checkpoint full of NaN weights",
       [](const fs::path& d) {
         CheckpointParts p = read_parts(last_ckpt(d));
         for (auto& [n, t] : p.tensors)
           if (n == "conv1.weight") t.data<float>()[3] = std::nanf("");
         write_parts((d / "nan.safetensors").string(), p, p.meta.dump());
         return std::vector<std::string>{"eval", "--checkpoint", (d / "nan.safetensors").string()};
       },
       2,
       {"nan.safetensors", "conv1.weight", "NaN"}});
  c.push_back({"architecture nested 100000 deep",
               [](const fs::path& d) {
                 CheckpointParts p = read_parts(last_ckpt(d));
                 std::string layers = std::string(100000, '[') + std::string(100000, ']');
                 std::string text = p.meta.dump();
                 const std::string key = "\"layers\":";
                 const auto at = text.find(key) + key.size();
                 json orig = p.meta["model"]["layers"];
                 text.replace(at, orig.dump().size(), layers);
                 write_parts((d / "deep.safetensors").string(), p, text);
                 return std::vector<std::string>{"export", "--checkpoint",
                                                 (d / "deep.safetensors").string(), "--out",
                                                 (d / "out" / "m").string()};
               },
               2,
               {"deep.safetensors", "deeper than"}});
  c.push_back({"epoch of 2^40 in the metadata",
               [](const fs::path& d) {
                 CheckpointParts p = read_parts(last_ckpt(d));
                 p.meta["epoch"] = int64_t{1} << 40;
                 write_parts(last_ckpt(d), p, p.meta.dump());
                 // A resume skips such a checkpoint for an older valid one (the run tests).
                 return std::vector<std::string>{"eval", "--checkpoint", last_ckpt(d)};
               },
               2,
               {"last.safetensors", "'epoch'", "1099511627776"}});
  c.push_back({"tensor shape that does not match the architecture",
               [](const fs::path& d) {
                 CheckpointParts p = read_parts(last_ckpt(d));
                 for (auto& [n, t] : p.tensors)
                   if (n == "fc.bias") t = Tensor({7});
                 write_parts((d / "shape.safetensors").string(), p, p.meta.dump());
                 return std::vector<std::string>{"eval", "--checkpoint",
                                                 (d / "shape.safetensors").string()};
               },
               2,
               {"shape.safetensors", "'fc.bias'", "the model expects"}});
  c.push_back({"NaN in the optimizer state on resume",
               [](const fs::path& d) {
                 CheckpointParts p = read_parts(last_ckpt(d));
                 for (auto& [n, t] : p.tensors)
                   if (n.rfind("optimizer.", 0) == 0) t.data<float>()[0] = INFINITY;
                 write_parts(last_ckpt(d), p, p.meta.dump());
                 return std::vector<std::string>{"--resume", (d / "run").string()};
               },
               2,
               {"last.safetensors", "optimizer.", "infinite"}});
  c.push_back({"last.safetensors that is a directory",
               [](const fs::path& d) {
                 fs::remove(last_ckpt(d));
                 fs::create_directories(last_ckpt(d));
                 return std::vector<std::string>{"eval", "--run", (d / "run").string()};
               },
               2,
               {"last.safetensors", "not a regular file"}});
  c.push_back({"truncated checkpoint",
               [](const fs::path& d) {
                 const std::string p = (d / "cut.safetensors").string();
                 fs::copy_file(last_ckpt(d), p);
                 fs::resize_file(p, fs::file_size(p) - 100);
                 return std::vector<std::string>{"eval", "--checkpoint", p};
               },
               2,
               {"cut.safetensors", "truncated"}});
  c.push_back({"metadata that is not JSON, with a raw-library-text check",
               [](const fs::path& d) {
                 CheckpointParts p = read_parts(last_ckpt(d));
                 write_parts((d / "garbage.safetensors").string(), p, "{\"format\": 1,");
                 return std::vector<std::string>{"eval", "--checkpoint",
                                                 (d / "garbage.safetensors").string()};
               },
               2,
               {"garbage.safetensors", "not valid JSON"}});
  // --- Datasets (src/data) ---
  c.push_back(
      {"IDX header whose dimensions multiply past 2^64",
       [](const fs::path& d) {
         const std::string dims = be32(0xFFFFFFFF) + be32(0xFFFFFFFF) + be32(0xFFFFFFFF);
         for (const char* split : {"train", "t10k"}) {
           write_bytes((d / "mnist" / (std::string(split) + "-images-idx3-ubyte")).string(),
                       std::string("\0\0\x08\x03", 4) + dims + "xx");
           write_bytes((d / "mnist" / (std::string(split) + "-labels-idx1-ubyte")).string(),
                       std::string("\0\0\x08\x01", 4) + be32(1) + "\x01");
         }
         return std::vector<std::string>{
             "--config", test_config("synthetic_tiny.json"),
             "--set",    "data={\"kind\":\"mnist\",\"path\":\"" + (d / "mnist").string() + "\"}",
             "--out",    (d / "new").string()};
       },
       2,
       {"train-images-idx3-ubyte", "2^64"},
       "mnist"});
  c.push_back(
      {"CIFAR file that is not whole records",
       [](const fs::path& d) {
         for (int b = 1; b <= 5; ++b)
           write_bytes((d / "cifar" / ("data_batch_" + std::to_string(b) + ".bin")).string(),
                       std::string(3073 + (b == 3 ? 5 : 0), '\1'));
         write_bytes((d / "cifar" / "test_batch.bin").string(), std::string(3073, '\1'));
         return std::vector<std::string>{
             "--config", test_config("synthetic_tiny.json"),
             "--set",    "data={\"kind\":\"cifar10\",\"path\":\"" + (d / "cifar").string() + "\"}",
             "--out",    (d / "new").string()};
       },
       2,
       {"data_batch_3.bin", "not a positive multiple"},
       "cifar"});
  c.push_back({"image whose header claims 65536 x 65536 (decoded: 12.9 GB)",
               [](const fs::path& d) {
                 // PNG signature + IHDR of an RGB image; the probe reads no further.
                 std::string png = "\x89PNG\r\n\x1a\n";
                 png += be32(13) + "IHDR" + be32(65536) + be32(65536) +
                        std::string("\x08\x02\0\0\0", 5) + be32(0);
                 write_bytes((d / "images" / "a" / "huge.png").string(), png);
                 return std::vector<std::string>{
                     "--config",
                     test_config("synthetic_tiny.json"),
                     "--set",
                     "data={\"kind\":\"image-folder\",\"path\":\"" + (d / "images").string() +
                         "\",\"image_folder\":{\"resize\":false,\"size\":[12,12]}}",
                     "--out",
                     (d / "new").string()};
               },
               2,
               {"huge.png"},
               "images"});
  c.push_back({"image whose header claims 17000 x 17000 (decoded: 867 MB)",
               [](const fs::path& d) {
                 std::string png = "\x89PNG\r\n\x1a\n";
                 png += be32(13) + "IHDR" + be32(17000) + be32(17000) +
                        std::string("\x08\x02\0\0\0", 5) + be32(0);
                 write_bytes((d / "images" / "a" / "big.png").string(), png);
                 return std::vector<std::string>{
                     "--config",
                     test_config("synthetic_tiny.json"),
                     "--set",
                     "data={\"kind\":\"image-folder\",\"path\":\"" + (d / "images").string() +
                         "\",\"image_folder\":{\"resize\":true,\"size\":[12,12]}}",
                     "--out",
                     (d / "new").string()};
               },
               2,
               {"big.png", "exceeds the limit"},
               "images"});
  c.push_back({"image folder whose images at the target size exceed memory",
               [](const fs::path& d) {
                 // Never decoded: the count times the target size is refused first.
                 for (int i = 0; i < 3000; ++i)
                   write_bytes((d / "many" / "a" / (std::to_string(i) + ".png")).string(), "x");
                 return std::vector<std::string>{
                     "--config",
                     test_config("synthetic_tiny.json"),
                     "--set",
                     "data={\"kind\":\"image-folder\",\"path\":\"" + (d / "many").string() +
                         "\",\"image_folder\":{\"size\":[16384,16384]}}",
                     "--out",
                     (d / "new").string()};
               },
               2,
               {"image folder", "many", "bytes, more than"},
               "many"});
  c.push_back({"synthetic dataset larger than memory",
               [](const fs::path& d) {
                 return std::vector<std::string>{"--config", test_config("synthetic_tiny.json"),
                                                 "--set",    "data.synthetic.train_size=2000000000",
                                                 "--set",    "data.synthetic.height=4096",
                                                 "--set",    "data.synthetic.width=4096",
                                                 "--out",    (d / "new").string()};
               },
               2,
               {"data.synthetic", "at most"}});
  // --- Writes (io/file_write.cpp) and export flags ---
  c.push_back({"report --out into a missing folder",
               [](const fs::path& d) {
                 return std::vector<std::string>{"report", (d / "run").string(), "--out",
                                                 (d / "missing" / "report.md").string()};
               },
               1,
               {"missing/report.md"}});
  c.push_back({"export --threshold inf",
               [](const fs::path& d) {
                 return std::vector<std::string>{
                     "export", "--run", (d / "run").string(),      "--threshold",
                     "inf",    "--out", (d / "out" / "m").string()};
               },
               2,
               {"--threshold", "finite"}});
  // --- Config and CLI cases (duplicate keys, deep --set, --out ""): tests/test_config.cpp
  //     and tests/test_cli.cpp. NaN/divergence policy: the trainer's tests. Run lock, resume
  //     safety, completion and stale temporary files: the run-directory tests. ---
  return c;
}

TEST_CASE("bad inputs: exit code, message naming the file, nothing changed", "[bad_inputs]") {
  const fs::path& run = trained_run();
  for (const Case& k : cases()) {
    DYNAMIC_SECTION(k.name) {
      ScratchDir dir("bad-input");
      const fs::path d(dir.str());
      fs::copy(run, d / "run", fs::copy_options::recursive);
      const std::vector<std::string> args = k.prepare(d);
      const auto before = snapshot(d / k.unchanged);
      const ProcessResult r = run_sparsetrain(args, dir / "log");
      INFO(r.output);
      CHECK(r.exit_code == k.exit_code);
      for (const std::string& m : k.message) CHECK_THAT(r.output, Catch::Contains(m));
      CHECK_THAT(r.output, !Catch::Contains("json.exception") && !Catch::Contains("bad_alloc"));
      if (!k.unchanged.empty()) CHECK(snapshot(d / k.unchanged) == before);
      CHECK_FALSE(fs::exists(d / "new"));
      CHECK_FALSE(fs::exists(d / "out"));
    }
  }
}

// stb_image built a JPEG Huffman table from counts totalling over 256 and wrote past its table
// (fuzz_image finding, UBSan). The same with the segment itself running past the end of the file.
TEST_CASE("fuzz regression: a JPEG Huffman table of over 256 codes is refused", "[bad_inputs]") {
  const std::string many(
      "\xff\xd8\xff\xff\xff\xc4\x01\x00\x00\x00\x00\x00\x00\x00\x00\x35\xff\xff\xff\xff"
      "\xff\xff\xff\xff\xff\xff\xff\x00\x55\xd6\xc1\x04\xd9\x1b",
      34);
  CHECK_THROWS_WITH(decode_bytes(many, "x.jpg"),
                    Catch::Contains("x.jpg") && Catch::Contains("past the end of the file"));
  // A segment that fits the file but whose table counts total 270.
  std::vector<uint8_t> dht = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x13, 0x00};
  for (int i = 0; i < 16; ++i) dht.push_back(i == 15 ? 30 : 16);
  dht.insert(dht.end(), {0xFF, 0xD9});
  CHECK_THROWS_WITH(data::decode_image_bytes(dht, 3, "y.jpg"),
                    Catch::Contains("y.jpg") && Catch::Contains("270 codes (at most 256)"));
}

}  // namespace
}  // namespace st::test

namespace st::test {
namespace {

TEST_CASE("bounded JSON: depth, duplicate keys, no library text", "[bad_inputs]") {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  const nlohmann::json deepest = parse_json_checked(nested(kMaxJsonDepth), "f.json");
  CHECK_FALSE(json_nested_deeper_than(deepest, kMaxJsonDepth));
  // The innermost array is the 64th level: its path has 63 indexes.
  std::string path;
  for (int i = 1; i < kMaxJsonDepth; ++i) path += "[0]";
  CHECK(json_nested_deeper_than(deepest, kMaxJsonDepth - 1) == path);
  CHECK_THROWS_WITH(parse_json_checked(nested(kMaxJsonDepth + 1), "f.json"),
                    Catch::Contains("f.json") && Catch::Contains("deeper than 64"));
  // Deep enough to exhaust the stack of a recursive parser or destructor.
  CHECK_THROWS_AS(parse_json_checked(nested(1'000'000), "f.json"), InputError);
  CHECK_THROWS_WITH(parse_json_checked(R"({"a":{"b":1,"b":2}})", "f.json"),
                    Catch::Contains("f.json: a.b: duplicate key \"b\""));
  // Equal keys in sibling objects are fine.
  CHECK_NOTHROW(parse_json_checked(R"([{"b":1},{"b":2}])", "f.json"));
  CHECK_THROWS_WITH(
      parse_json_checked("{\"a\":", "f.json"),
      Catch::Contains("f.json: not valid JSON") && !Catch::Contains("json.exception"));
}

TEST_CASE("checked size arithmetic and finite tensors", "[bad_inputs]") {
  CHECK(checked_mul(uint64_t{1} << 32, (uint64_t{1} << 32) - 1, "x") ==
        (uint64_t{1} << 32) * ((uint64_t{1} << 32) - 1));
  CHECK_THROWS_WITH(checked_mul(uint64_t{1} << 32, uint64_t{1} << 32, "hdr"),
                    Catch::Contains("hdr") && Catch::Contains("overflows"));
  CHECK_THROWS_AS(checked_product({60000, 60000, 60000, 60000, 60000}, "x"), InputError);
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3}, {3});
  CHECK_NOTHROW(check_finite(t, "w", "f"));
  t.data<float>()[2] = -INFINITY;
  CHECK_THROWS_WITH(check_finite(t, "w", "f.safetensors"), Catch::Contains("f.safetensors") &&
                                                               Catch::Contains("'w'") &&
                                                               Catch::Contains("index 2"));
}

TEST_CASE("the safetensors writer refuses a header its reader would refuse", "[bad_inputs]") {
  const Tensor t = Tensor::from_vector(std::vector<float>{1}, {1});
  const std::string huge(kSafetensorsMaxHeader, 'x');
  CHECK_THROWS_WITH(serialize_safetensors({{"a", t}}, {{"description", huge}}),
                    Catch::Contains("reader's limit"));
  // Just under the limit still round-trips.
  const std::string big(kSafetensorsMaxHeader - 200, 'x');
  const std::vector<uint8_t> image = serialize_safetensors({{"a", t}}, {{"d", big}});
  CHECK(SafetensorsReader::parse(image, "big").metadata().at("d").size() == big.size());
}

// A write that fails midway (here: the file size limit, as a full disk would) is reported
// with the path and leaves neither the final file nor the temporary one.
TEST_CASE("checked writes: a failing write leaves no partial file", "[bad_inputs]") {
  ScratchDir dir("full-write");
  const std::string path = dir / "out.bin";
  struct rlimit old {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string error;
  try {
    write_file_atomic(path, std::string(1 << 20, 'x'));
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK_THAT(error, Catch::Contains(path) && Catch::Contains("write failed"));
  CHECK(std::distance(fs::directory_iterator(dir.str()), fs::directory_iterator()) == 0);
  // The writer's own folder missing.
  CHECK_THROWS_WITH(write_file_atomic(dir / "no/such/dir/x", "x"),
                    Catch::Contains("no/such/dir/x"));
}

// The CLI on a real full file system (a 64 KiB tmpfs; needs root to mount, skipped otherwise):
// report --out and export both exit 1 naming the path, and leave no file behind.
TEST_CASE("checked writes: report --out and export on a full disk", "[bad_inputs]") {
  ScratchDir dir("full-disk");
  const fs::path mnt = fs::path(dir.str()) / "tmpfs";
  fs::create_directories(mnt);
  if (std::system(
          ("mount -t tmpfs -o size=64k tmpfs '" + mnt.string() + "' 2>/dev/null").c_str()) != 0) {
    WARN("cannot mount a tmpfs here (not root?): full-disk CLI check skipped");
    return;
  }
  struct Unmount {
    std::string m;
    ~Unmount() { (void)std::system(("umount '" + m + "'").c_str()); }
  } unmount{mnt.string()};
  // Fill it: writes fail with ENOSPC from here on.
  (void)std::system(
      ("dd if=/dev/zero of='" + (mnt / "filler").string() + "' bs=4k count=64 2>/dev/null")
          .c_str());
  const fs::path& run = trained_run();
  const std::string report = (mnt / "report.md").string();
  ProcessResult r = run_sparsetrain({"report", run.string(), "--out", report}, dir / "log1");
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains(report));
  ProcessResult e = run_sparsetrain(
      {"export", "--run", run.string(), "--out", (mnt / "model").string()}, dir / "log2");
  CHECK(e.exit_code == 1);
  CHECK_THAT(e.output, Catch::Contains((mnt / "model").string()));
  std::vector<std::string> left;
  for (const auto& f : fs::directory_iterator(mnt)) left.push_back(f.path().filename().string());
  CHECK(left == std::vector<std::string>{"filler"});
}

}  // namespace
}  // namespace st::test

namespace st::test {
namespace {

// Fuzzing regression (fuzz_image, UBSan): a PNG whose only IDAT chunk is empty made the
// decoder copy zero bytes into a null buffer.
TEST_CASE("fuzz regression: a PNG with an empty first IDAT chunk is refused", "[bad_inputs]") {
  const std::string png(
      "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x02\x00\x00\x00"
      "\x02\x08\x06\x00\x00\x00\x72\xb6\x0d\x24\x00\x00\x00\x1a\xa0\x44\x41\x54\x7a\x9c\x63\x60\x60"
      "\x64\x62\x66\x61\x65\x63\x67\xe0\xe0\xe4\xe2\xe6\xe1\xe5\xe3\x07\x00\x02\xd6\x00\x79\xd7\x8e"
      "\xa8\xff\x00\x00\x00\x00\x49\x44\x41\x54\xae\x42\x60\x82",
      83);
  CHECK_THROWS_WITH(decode_bytes(png, "x.png"),
                    Catch::Contains("x.png") && Catch::Contains("empty first image-data"));
}

// Fuzzing regression (fuzz_image): a 2x2 PNG whose IDAT chunk declares 1.7 GB made the
// decoder allocate that much before reading it.
TEST_CASE("fuzz regression: a PNG chunk longer than the file is refused", "[bad_inputs]") {
  const std::string png(
      "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x02\x00\x00\x00"
      "\x02\x08\x06\x00\x00\x00\x72\xb6\x49\x42\x67\x43\x00\x1a\x49\x44\x41\x54\x78\x9c\x63\x60\x60"
      "\x64\x62\x66\x61\x65\x63\x67\xe0\xe0\xe4\xe2\xe6\x00\x02\xe1\xe5\xe3\x07\x30\x00\x02\xd6\x00"
      "\x79\xd7\x8e\xa8\xff\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82",
      86);
  CHECK_THROWS_WITH(decode_bytes(png, "x.png"),
                    Catch::Contains("x.png") && Catch::Contains("past the end of the file"));
  // The same with the chunk header itself cut off at the end of the file.
  const std::string cut(
      "\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x02\x00\x00\x00"
      "\x02\x08\x06\x00\x00\x00\x72\xb6\x0d\x24\x45\x00\x00\x1a\x49\x44\x41\x54\x78\x9c\x21",
      44);
  CHECK_THROWS_WITH(decode_bytes(cut, "y.png"),
                    Catch::Contains("y.png") && Catch::Contains("cut off"));
}

}  // namespace
}  // namespace st::test

namespace st::test {
namespace {

// Fuzzing regression (fuzz_image): a ".png" holding PNM text with a long number overflowed
// stb's PNM parser. Only PNG and JPEG content is decoded.
TEST_CASE("fuzz regression: an image that is neither PNG nor JPEG is refused", "[bad_inputs]") {
  const std::string pnm = "P6\n" + std::string(40, '1') + " 2\n255\n";
  CHECK_THROWS_WITH(decode_bytes(pnm, "x.png"),
                    Catch::Contains("x.png") && Catch::Contains("not a PNG or JPEG"));
}

}  // namespace
}  // namespace st::test
