#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

// The test binary writes its own PNG/JPEG fixtures; static keeps these symbols private.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include "data/cifar.h"
#include "data/dataset.h"
#include "data/file_bytes.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/loader.h"
#include "data/resize.h"
#include "data/synthetic.h"

using namespace st;
using namespace st::data;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

// A fresh directory under the system temp dir, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() /
            ("sparsetrain_test_data_" + std::to_string(stamp) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

void write_gzip(const fs::path& p, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(p.string().c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void append_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

std::vector<uint8_t> idx_images(int n, int h, int w, const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> v = {0, 0, 8, 3};
  append_be32(v, n);
  append_be32(v, h);
  append_be32(v, w);
  v.insert(v.end(), pixels.begin(), pixels.end());
  return v;
}

std::vector<uint8_t> idx_labels(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> v = {0, 0, 8, 1};
  append_be32(v, static_cast<uint32_t>(labels.size()));
  v.insert(v.end(), labels.begin(), labels.end());
  return v;
}

// 3 images of 2x3, pixel k of image i = 40*i + 7*k.
std::vector<uint8_t> idx_test_pixels() {
  std::vector<uint8_t> p;
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 6; ++k) p.push_back(static_cast<uint8_t>(40 * i + 7 * k));
  }
  return p;
}

void check_idx_test_dataset(const Dataset& d) {
  REQUIRE(d.size() == 3);
  REQUIRE(d.channels == 1);
  REQUIRE(d.height == 2);
  REQUIRE(d.width == 3);
  REQUIRE(d.classes == 10);
  REQUIRE(d.labels == std::vector<int32_t>{3, 0, 9});
  REQUIRE(d.pixels == idx_test_pixels());
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return "";
}

Dataset tiny_dataset(int n, int c, int h, int w, int classes) {
  Dataset d;
  d.channels = c;
  d.height = h;
  d.width = w;
  d.classes = classes;
  d.description = "tiny";
  for (int i = 0; i < n; ++i) {
    d.labels.push_back(i % classes);
    for (int k = 0; k < c * h * w; ++k)
      d.pixels.push_back(static_cast<uint8_t>((i * 31 + k * 7) % 256));
  }
  return d;
}

}  // namespace

// ---------------------------------------------------------------- IDX

TEST_CASE("IDX raw and gzip files load exactly", "[data][idx]") {
  TempDir tmp;
  const auto images = idx_images(3, 2, 3, idx_test_pixels());
  const auto labels = idx_labels({3, 0, 9});
  write_bytes(tmp.path() / "raw-images", images);
  write_bytes(tmp.path() / "raw-labels", labels);
  write_gzip(tmp.path() / "gz-images.gz", images);
  write_gzip(tmp.path() / "gz-labels.gz", labels);

  REQUIRE_FALSE(is_gzip_file(tmp.path() / "raw-images"));
  REQUIRE(is_gzip_file(tmp.path() / "gz-images.gz"));
  check_idx_test_dataset(load_idx(tmp.path() / "raw-images", tmp.path() / "raw-labels"));
  check_idx_test_dataset(load_idx(tmp.path() / "gz-images.gz", tmp.path() / "gz-labels.gz"));
  // Mixed: gzip detection is by content, not by name.
  check_idx_test_dataset(load_idx(tmp.path() / "gz-images.gz", tmp.path() / "raw-labels"));
}

TEST_CASE("IDX directory form finds the standard file names", "[data][idx]") {
  TempDir tmp;
  const auto images = idx_images(3, 2, 3, idx_test_pixels());
  const auto labels = idx_labels({3, 0, 9});
  // Train gzipped with dashes (Debian's names), test raw with the dotted variant.
  write_gzip(tmp.path() / "train-images-idx3-ubyte.gz", images);
  write_gzip(tmp.path() / "train-labels-idx1-ubyte.gz", labels);
  write_bytes(tmp.path() / "t10k-images.idx3-ubyte", idx_images(1, 2, 3, {1, 2, 3, 4, 5, 6}));
  write_bytes(tmp.path() / "t10k-labels.idx1-ubyte", idx_labels({7}));

  const Dataset train = load_idx_dir(tmp.path(), DataSplit::Train, fashion_mnist_class_names());
  check_idx_test_dataset(train);
  REQUIRE(train.class_names.at(9) == "Ankle boot");
  const Dataset test = load_idx_dir(tmp.path(), DataSplit::Test);
  REQUIRE(test.size() == 1);
  REQUIRE(test.labels[0] == 7);
  REQUIRE(test.pixels == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});

  fs::remove(tmp.path() / "t10k-labels.idx1-ubyte");
  REQUIRE_THAT(error_of([&] { load_idx_dir(tmp.path(), DataSplit::Test); }),
               Contains("t10k-labels-idx1-ubyte.gz"));
}

TEST_CASE("IDX errors name the file and the problem", "[data][idx]") {
  TempDir tmp;
  const fs::path img = tmp.path() / "imgs.idx", lab = tmp.path() / "labs.idx";
  const auto good_images = idx_images(3, 2, 3, idx_test_pixels());
  write_bytes(lab, idx_labels({3, 0, 9}));

  SECTION("bad magic") {
    auto bad = good_images;
    bad[3] = 1;  // claims one dimension
    write_bytes(img, bad);
    const std::string e = error_of([&] { load_idx(img, lab); });
    REQUIRE_THAT(e, Contains(img.string()) && Contains("bad magic"));
  }
  SECTION("label file given as image file") {
    const std::string e = error_of([&] { load_idx(lab, lab); });
    REQUIRE_THAT(e, Contains(lab.string()) && Contains("bad magic"));
  }
  SECTION("truncated data") {
    write_bytes(img, std::vector<uint8_t>(good_images.begin(), good_images.end() - 1));
    REQUIRE_THAT(error_of([&] { load_idx(img, lab); }),
                 Contains(img.string()) && Contains("truncated"));
  }
  SECTION("truncated header") {
    write_bytes(img, {0, 0, 8, 3, 0, 0});
    REQUIRE_THAT(error_of([&] { load_idx(img, lab); }),
                 Contains(img.string()) && Contains("truncated"));
  }
  SECTION("trailing bytes") {
    auto bad = good_images;
    bad.push_back(0);
    write_bytes(img, bad);
    REQUIRE_THAT(error_of([&] { load_idx(img, lab); }),
                 Contains(img.string()) && Contains("size mismatch"));
  }
  SECTION("image and label counts differ") {
    write_bytes(img, good_images);
    write_bytes(lab, idx_labels({3, 0}));
    REQUIRE_THAT(error_of([&] { load_idx(img, lab); }),
                 Contains("3 images but 2 labels") && Contains(lab.string()));
  }
  SECTION("label out of range") {
    write_bytes(img, good_images);
    write_bytes(lab, idx_labels({3, 10, 9}));
    REQUIRE_THAT(error_of([&] { load_idx(img, lab); }),
                 Contains(lab.string()) && Contains("label 10") && Contains("out of range"));
  }
  SECTION("truncated gzip stream") {
    const fs::path gz = tmp.path() / "imgs.gz";
    write_gzip(gz, good_images);
    std::vector<uint8_t> bytes = read_file_bytes(gz);  // decompressed: check round trip
    REQUIRE(bytes == good_images);
    std::ifstream in(gz, std::ios::binary);
    std::vector<uint8_t> packed((std::istreambuf_iterator<char>(in)), {});
    packed.resize(packed.size() - 12);
    write_bytes(gz, packed);
    REQUIRE_THAT(error_of([&] { load_idx(gz, lab); }), Contains(gz.string()) && Contains("gzip"));
  }
  SECTION("missing file") {
    REQUIRE_THAT(error_of([&] { load_idx(tmp.path() / "nope", lab); }),
                 Contains("nope") && Contains("cannot open"));
  }
}

TEST_CASE("Debian's Fashion-MNIST loads with the known class balance", "[data][idx][real]") {
  const fs::path dir = kDebianFashionMnistDir;
  if (!fs::is_directory(dir)) {
    WARN("skipped: " << dir << " is absent (install dataset-fashion-mnist)");
    return;
  }
  const Dataset train = load_idx_dir(dir, DataSplit::Train, fashion_mnist_class_names());
  const Dataset test = load_idx_dir(dir, DataSplit::Test, fashion_mnist_class_names());
  REQUIRE(train.size() == 60000);
  REQUIRE(test.size() == 10000);
  for (const Dataset* d : {&train, &test}) {
    REQUIRE(d->channels == 1);
    REQUIRE(d->height == 28);
    REQUIRE(d->width == 28);
    REQUIRE(*std::min_element(d->labels.begin(), d->labels.end()) == 0);
    REQUIRE(*std::max_element(d->labels.begin(), d->labels.end()) == 9);
  }
  // Fashion-MNIST is balanced: 6000 / 1000 images per class.
  REQUIRE(class_counts(train) == std::vector<int64_t>(10, 6000));
  REQUIRE(class_counts(test) == std::vector<int64_t>(10, 1000));
}

// ---------------------------------------------------------------- CIFAR

namespace {

// Record pixel k of global image g: (g * 13 + k) % 256, with the given label bytes in front.
std::vector<uint8_t> cifar_records(int first, int count,
                                   const std::vector<std::vector<uint8_t>>& labels) {
  std::vector<uint8_t> v;
  for (int i = 0; i < count; ++i) {
    v.insert(v.end(), labels[i].begin(), labels[i].end());
    for (int k = 0; k < 3072; ++k) v.push_back(static_cast<uint8_t>(((first + i) * 13 + k) % 256));
  }
  return v;
}

void check_cifar_pixels(const Dataset& d) {
  for (int64_t g = 0; g < d.size(); ++g) {
    for (int k = 0; k < 3072; k += 97) {
      REQUIRE(d.image(g)[k] == static_cast<uint8_t>((g * 13 + k) % 256));
    }
    REQUIRE(d.image(g)[3071] == static_cast<uint8_t>((g * 13 + 3071) % 256));
  }
}

}  // namespace

TEST_CASE("CIFAR-10 binary batches load in order", "[data][cifar]") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "cifar-10-batches-bin";
  std::vector<int32_t> expected_labels;
  for (int b = 1; b <= 5; ++b) {
    const int first = 2 * (b - 1);
    const std::vector<std::vector<uint8_t>> labs = {{uint8_t(first % 10)},
                                                    {uint8_t((first + 7) % 10)}};
    expected_labels.push_back(first % 10);
    expected_labels.push_back((first + 7) % 10);
    write_bytes(dir / ("data_batch_" + std::to_string(b) + ".bin"), cifar_records(first, 2, labs));
  }
  write_bytes(dir / "test_batch.bin", cifar_records(0, 3, {{9}, {0}, {4}}));

  // The parent directory works too: the conventional subfolder is found.
  const Dataset train = load_cifar10(tmp.path(), DataSplit::Train);
  REQUIRE(train.size() == 10);
  REQUIRE(train.channels == 3);
  REQUIRE(train.height == 32);
  REQUIRE(train.width == 32);
  REQUIRE(train.classes == 10);
  REQUIRE(train.labels == expected_labels);
  REQUIRE(train.class_names.at(0) == "airplane");
  check_cifar_pixels(train);

  std::ofstream(dir / "batches.meta.txt") << "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n";
  const Dataset test = load_cifar10(dir, DataSplit::Test);
  REQUIRE(test.labels == std::vector<int32_t>{9, 0, 4});
  REQUIRE(test.class_names.at(9) == "j");
  check_cifar_pixels(test);

  SECTION("truncated batch") {
    auto bytes = cifar_records(0, 2, {{1}, {2}});
    bytes.resize(bytes.size() - 100);
    write_bytes(dir / "data_batch_3.bin", bytes);
    REQUIRE_THAT(error_of([&] { load_cifar10(dir, DataSplit::Train); }),
                 Contains("data_batch_3.bin") && Contains("3073-byte record"));
  }
  SECTION("label out of range") {
    write_bytes(dir / "test_batch.bin", cifar_records(0, 2, {{1}, {10}}));
    REQUIRE_THAT(error_of([&] { load_cifar10(dir, DataSplit::Test); }),
                 Contains("test_batch.bin") && Contains("label 10") && Contains("record 1"));
  }
  SECTION("missing batch") {
    fs::remove(dir / "data_batch_5.bin");
    REQUIRE_THAT(error_of([&] { load_cifar10(dir, DataSplit::Train); }),
                 Contains("data_batch_5.bin"));
  }
}

TEST_CASE("CIFAR-100 selects fine or coarse labels", "[data][cifar]") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "cifar-100-binary";
  // (coarse, fine) pairs.
  write_bytes(dir / "train.bin", cifar_records(0, 3, {{4, 99}, {19, 0}, {0, 42}}));
  write_bytes(dir / "test.bin", cifar_records(0, 1, {{7, 70}}));

  const Dataset fine = load_cifar100(tmp.path(), DataSplit::Train, Cifar100Labels::Fine);
  REQUIRE(fine.classes == 100);
  REQUIRE(fine.labels == std::vector<int32_t>{99, 0, 42});
  check_cifar_pixels(fine);
  const Dataset coarse = load_cifar100(dir, DataSplit::Train, Cifar100Labels::Coarse);
  REQUIRE(coarse.classes == 20);
  REQUIRE(coarse.labels == std::vector<int32_t>{4, 19, 0});
  REQUIRE(coarse.pixels == fine.pixels);
  REQUIRE(load_cifar100(dir, DataSplit::Test).labels == std::vector<int32_t>{70});

  write_bytes(dir / "train.bin", cifar_records(0, 1, {{20, 5}}));
  REQUIRE_THAT(error_of([&] { load_cifar100(dir, DataSplit::Train, Cifar100Labels::Coarse); }),
               Contains("train.bin") && Contains("label 20"));
  REQUIRE(load_cifar100(dir, DataSplit::Train, Cifar100Labels::Fine).labels[0] == 5);
  // A CIFAR-10 file read as CIFAR-100 is not a whole number of 3074-byte records.
  write_bytes(dir / "test.bin", cifar_records(0, 2, {{1}, {2}}));
  REQUIRE_THAT(error_of([&] { load_cifar100(dir, DataSplit::Test); }),
               Contains("test.bin") && Contains("3074-byte record"));
}

// ---------------------------------------------------------------- image folder

namespace {

// Writes an HWC image; the extension picks PNG or JPEG (quality 100).
void write_image(const fs::path& p, int w, int h, int comp, const std::vector<uint8_t>& hwc) {
  fs::create_directories(p.parent_path());
  int ok = 0;
  if (p.extension() == ".png" || p.extension() == ".PNG") {
    ok = stbi_write_png(p.string().c_str(), w, h, comp, hwc.data(), w * comp);
  } else {
    ok = stbi_write_jpg(p.string().c_str(), w, h, comp, hwc.data(), 100);
  }
  REQUIRE(ok != 0);
}

// HWC RGB image with pixel (y, x) = (10 y + x + s, 100 + x, 200 - y).
std::vector<uint8_t> rgb_pattern(int w, int h, int s) {
  std::vector<uint8_t> v;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      v.push_back(static_cast<uint8_t>(10 * y + x + s));
      v.push_back(static_cast<uint8_t>(100 + x));
      v.push_back(static_cast<uint8_t>(200 - y));
    }
  }
  return v;
}

}  // namespace

TEST_CASE("image folder reads classes and files in sorted order", "[data][images]") {
  TempDir tmp;
  const fs::path root = tmp.path() / "imgs";
  write_image(root / "dog" / "b.png", 4, 3, 3, rgb_pattern(4, 3, 5));
  write_image(root / "dog" / "a.PNG", 4, 3, 3, rgb_pattern(4, 3, 1));
  write_image(root / "cat" / "z.png", 4, 3, 3, rgb_pattern(4, 3, 9));
  write_image(root / "cat" / "flat.jpg", 4, 3, 3, std::vector<uint8_t>(36, 120));
  std::ofstream(root / "cat" / "notes.txt") << "not an image";
  fs::create_directories(root / ".hidden");
  write_image(root / ".hidden" / "x.png", 4, 3, 3, rgb_pattern(4, 3, 0));

  const Dataset d = load_image_folder(root, {3, 0, 0, false});
  REQUIRE(d.class_names == std::vector<std::string>{"cat", "dog"});
  REQUIRE(d.classes == 2);
  REQUIRE(d.labels == std::vector<int32_t>{0, 0, 1, 1});
  REQUIRE(d.channels == 3);
  REQUIRE(d.height == 3);
  REQUIRE(d.width == 4);
  // Order: cat/flat.jpg, cat/z.png, dog/a.PNG, dog/b.png. JPEG of a flat colour is near exact.
  for (int k = 0; k < 36; ++k) REQUIRE(std::abs(int(d.image(0)[k]) - 120) <= 1);
  const int shift[] = {0, 9, 1, 5};
  for (int i = 1; i < 4; ++i) {
    const auto hwc = rgb_pattern(4, 3, shift[i]);
    for (int c = 0; c < 3; ++c) {
      for (int y = 0; y < 3; ++y) {
        for (int x = 0; x < 4; ++x) {
          REQUIRE(d.image(i)[(c * 3 + y) * 4 + x] == hwc[(y * 4 + x) * 3 + c]);
        }
      }
    }
  }

  SECTION("grey conversion follows stb's integer luma") {
    const Dataset g = load_image_folder(root, {1, 3, 4, false});
    REQUIRE(g.channels == 1);
    const auto hwc = rgb_pattern(4, 3, 9);
    for (int k = 0; k < 12; ++k) {
      const int r = hwc[3 * k], gr = hwc[3 * k + 1], b = hwc[3 * k + 2];
      REQUIRE(g.image(1)[k] == static_cast<uint8_t>((r * 77 + gr * 150 + b * 29) >> 8));
    }
  }
  SECTION("grey images expand to three equal channels") {
    const fs::path groot = tmp.path() / "grey";
    std::vector<uint8_t> grey = {0, 50, 100, 150, 200, 250};
    write_image(groot / "only" / "g.png", 3, 2, 1, grey);
    const Dataset g = load_image_folder(groot, {3, 2, 3, false});
    for (int c = 0; c < 3; ++c) {
      REQUIRE(std::vector<uint8_t>(g.image(0) + 6 * c, g.image(0) + 6 * c + 6) == grey);
    }
  }
  SECTION("check-size mode names the odd image and its size") {
    write_image(root / "dog" / "c.png", 5, 2, 3, rgb_pattern(5, 2, 0));
    const std::string e = error_of([&] { load_image_folder(root, {3, 0, 0, false}); });
    REQUIRE_THAT(e, Contains("c.png") && Contains("2x5") && Contains("3x4"));
    const std::string e2 = error_of([&] { load_image_folder(root, {3, 3, 5, false}); });
    REQUIRE_THAT(e2, Contains("flat.jpg") && Contains("3x4") && Contains("3x5"));
  }
  SECTION("resize mode brings every image to the target size") {
    write_image(root / "dog" / "c.png", 8, 6, 3, rgb_pattern(8, 6, 0));
    const Dataset r = load_image_folder(root, {3, 6, 8, true});
    REQUIRE(r.size() == 5);
    REQUIRE(r.height == 6);
    REQUIRE(r.width == 8);
    // The 8x6 image is taken as is; the 4x3 ones are upsampled (2x) and their right edge
    // column repeats the source's last column (clamped edge).
    const auto hwc = rgb_pattern(8, 6, 0);
    REQUIRE(r.image(4)[0] == hwc[0]);
    REQUIRE(r.image(4)[8 * 6 + 7] == hwc[7 * 3 + 1]);
    REQUIRE(r.image(1)[0] == 9);
    REQUIRE(r.image(1)[7] == 9 + 3);
  }
  SECTION("undecodable file") {
    std::ofstream(root / "dog" / "broken.png") << "this is no png";
    REQUIRE_THAT(error_of([&] {
                   load_image_folder(root, {3, 0, 0, false});
                 }),
                 Contains("broken.png") && Contains("cannot decode"));
  }
  SECTION("bad options") {
    REQUIRE_THROWS_WITH(load_image_folder(root, {2, 0, 0, false}), Contains("channels 2"));
    REQUIRE_THROWS_WITH(load_image_folder(root, {3, 0, 0, true}), Contains("target size"));
    REQUIRE_THROWS_WITH(load_image_folder(tmp.path() / "none", {3, 0, 0, false}),
                        Contains("does not exist"));
  }
}

TEST_CASE("resize: area averaging down - bilinear interpolation up", "[data][images]") {
  // One 4x4 plane of 2x2 blocks: halving gives the block means.
  const std::vector<uint8_t> blocks = {10, 20, 100, 100,  //
                                       30, 40, 100, 100,  //
                                       0,  0,  7,   9,    //
                                       0,  4,  11,  13};
  REQUIRE(resize_image(blocks.data(), 1, 4, 4, 2, 2) == std::vector<uint8_t>{25, 100, 1, 10});
  // 3 -> 2: output 0 covers source [0, 1.5): (a + b / 2) / 1.5.
  const std::vector<uint8_t> row3 = {30, 90, 150};
  REQUIRE(resize_image(row3.data(), 1, 1, 3, 1, 2) == std::vector<uint8_t>{50, 130});
  // 2 -> 4 with pixel-centre alignment: x_src = (x + 0.5) / 2 - 0.5, clamped to [0, 1].
  const std::vector<uint8_t> row2 = {0, 200};
  REQUIRE(resize_image(row2.data(), 1, 1, 2, 1, 4) == std::vector<uint8_t>{0, 50, 150, 200});
  // Channels are independent; identity size is the identity.
  const std::vector<uint8_t> two = {1, 2, 3, 4, 5, 6, 7, 8};
  REQUIRE(resize_image(two.data(), 2, 2, 2, 2, 2) == two);
}

// ---------------------------------------------------------------- synthetic

TEST_CASE("synthetic data is deterministic and learnable", "[data][synthetic]") {
  SyntheticOptions o;
  o.size = 400;
  o.channels = 3;
  o.height = 12;
  o.width = 12;
  o.classes = 8;
  o.noise = 0.3f;
  o.max_shift = 1;
  const Dataset train = make_synthetic(o);
  REQUIRE(train.size() == 400);
  REQUIRE(class_counts(train) == std::vector<int64_t>(8, 50));
  REQUIRE(make_synthetic(o).pixels == train.pixels);
  o.sample_seed = 2;
  o.size = 200;
  const Dataset test = make_synthetic(o);
  REQUIRE(test.pixels !=
          std::vector<uint8_t>(train.pixels.begin(), train.pixels.begin() + test.pixels.size()));

  // Nearest class mean, fitted on one sample seed, scored on another: far above 1/8 chance.
  const int64_t n = train.image_numel();
  std::vector<double> means(8 * n, 0.0);
  for (int64_t i = 0; i < train.size(); ++i) {
    for (int64_t k = 0; k < n; ++k) means[train.labels[i] * n + k] += train.image(i)[k] / 50.0;
  }
  int correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    int best = -1;
    double best_d = 1e300;
    for (int c = 0; c < 8; ++c) {
      double dist = 0;
      for (int64_t k = 0; k < n; ++k) {
        const double diff = test.image(i)[k] - means[c * n + k];
        dist += diff * diff;
      }
      if (dist < best_d) best_d = dist, best = c;
    }
    correct += best == test.labels[i];
  }
  REQUIRE(correct >= 0.9 * test.size());

  // Without noise or shift every sample of a class is the same template, in (0.15, 0.85).
  o.noise = 0;
  o.max_shift = 0;
  const Dataset clean = make_synthetic(o);
  for (int64_t k = 0; k < n; ++k) {
    REQUIRE(clean.image(0)[k] == clean.image(8)[k]);
    REQUIRE(clean.image(0)[k] >= 38);
    REQUIRE(clean.image(0)[k] <= 217);
  }
  REQUIRE(!std::equal(clean.image(0), clean.image(0) + n, clean.image(1)));
  o.template_seed = 5;
  REQUIRE(make_synthetic(o).pixels != clean.pixels);
  o.classes = 0;
  REQUIRE_THROWS_WITH(make_synthetic(o), Contains("classes 0"));
}

// ---------------------------------------------------------------- dataset helpers

TEST_CASE("subsets and validation splits are seeded and exact", "[data][dataset]") {
  const Dataset d = tiny_dataset(100, 1, 2, 2, 4);  // 25 per class
  const Dataset first = take_first(d, 7);
  REQUIRE(first.size() == 7);
  REQUIRE(std::equal(first.pixels.begin(), first.pixels.end(), d.pixels.begin()));
  REQUIRE(take_first(d, 1000).size() == 100);

  const auto a = random_subset_indices(d, 30, 11, false);
  REQUIRE(a == random_subset_indices(d, 30, 11, false));
  REQUIRE(a != random_subset_indices(d, 30, 12, false));
  REQUIRE(std::is_sorted(a.begin(), a.end()));
  REQUIRE(std::set<int64_t>(a.begin(), a.end()).size() == 30);
  const Dataset sub = random_subset(d, 30, 11);
  for (int k = 0; k < 30; ++k) {
    REQUIRE(sub.labels[k] == d.labels[a[k]]);
    REQUIRE(sub.image(k)[3] == d.image(a[k])[3]);
  }

  // Stratified: 30 of 4 x 25 -> 7.5 each; the two leftover places go to classes 0 and 1.
  const Dataset strat = random_subset(d, 30, 3, true);
  REQUIRE(class_counts(strat) == std::vector<int64_t>{8, 8, 7, 7});

  const TrainValidation s = split_validation(d, 20, 5, true);
  REQUIRE(s.validation.size() == 20);
  REQUIRE(s.train.size() == 80);
  REQUIRE(class_counts(s.validation) == std::vector<int64_t>{5, 5, 5, 5});
  // Disjoint and complete: an image's first pixel (31 i mod 256) identifies it here.
  std::vector<int> seen;
  for (const Dataset* part : {&s.train, &s.validation}) {
    for (int64_t i = 0; i < part->size(); ++i) {
      seen.push_back(part->image(i)[0]);
      REQUIRE(part->labels[i] == d.labels[(part->image(i)[0] * 223) % 256]);  // 223 = 31^-1
    }
  }
  std::vector<int> all;
  for (int64_t i = 0; i < d.size(); ++i) all.push_back(d.image(i)[0]);
  std::sort(seen.begin(), seen.end());
  std::sort(all.begin(), all.end());
  REQUIRE(seen == all);
  REQUIRE(split_validation(d, 20, 5, true).validation.pixels == s.validation.pixels);
  REQUIRE(split_validation(d, 20, 6, true).validation.pixels != s.validation.pixels);
  REQUIRE_THROWS_WITH(split_validation(d, 101, 5), Contains("101"));
}

TEST_CASE("label noise makes exactly the asked-for labels wrong, over the other classes",
          "[data][dataset]") {
  const Dataset d = tiny_dataset(400, 1, 2, 2, 4);
  Dataset noisy = d;
  const std::vector<int64_t> changed = corrupt_labels(noisy, 100, 7);
  REQUIRE(changed.size() == 100);
  REQUIRE(std::is_sorted(changed.begin(), changed.end()));
  const std::set<int64_t> picked(changed.begin(), changed.end());
  REQUIRE(picked.size() == 100);
  for (int64_t i = 0; i < d.size(); ++i) {
    if (picked.count(i)) {
      REQUIRE(noisy.labels[i] != d.labels[i]);
      REQUIRE(noisy.labels[i] >= 0);
      REQUIRE(noisy.labels[i] < 4);
    } else {
      REQUIRE(noisy.labels[i] == d.labels[i]);
    }
  }
  REQUIRE(noisy.pixels == d.pixels);
  Dataset again = d, other = d;
  corrupt_labels(again, 100, 7);
  corrupt_labels(other, 100, 8);
  REQUIRE(again.labels == noisy.labels);
  REQUIRE(other.labels != noisy.labels);

  // Every label changed, 3 classes: each true class's 2000 go to the 2 others about half and
  // half (binomial sd 22; 5 sd allowed).
  const Dataset three = tiny_dataset(6000, 1, 1, 1, 3);
  Dataset all = three;
  corrupt_labels(all, all.size(), 1);
  std::vector<int> moved(9, 0);
  for (int64_t i = 0; i < three.size(); ++i) moved[three.labels[i] * 3 + all.labels[i]]++;
  for (int from = 0; from < 3; ++from) {
    for (int to = 0; to < 3; ++to) {
      const int n = moved[from * 3 + to];
      REQUIRE((from == to ? n == 0 : std::abs(n - 1000) < 112));
    }
  }
  REQUIRE_THROWS_WITH(corrupt_labels(noisy, 401, 7), Contains("401"));
  Dataset one_class = tiny_dataset(10, 1, 1, 1, 1);
  REQUIRE_THROWS_WITH(corrupt_labels(one_class, 1, 7), Contains("2 classes"));
  REQUIRE(corrupt_labels(one_class, 0, 7).empty());
}

TEST_CASE("seeded permutations are uniform enough and deterministic", "[data][dataset]") {
  // Position counts of element 0 over many seeds: each of 5 places about 1/5 of the time.
  std::vector<int> where(5, 0);
  for (uint64_t seed = 0; seed < 5000; ++seed) {
    const auto p = seeded_permutation(5, seed);
    where[std::find(p.begin(), p.end(), 0) - p.begin()]++;
  }
  for (int c : where) REQUIRE(std::abs(c - 1000) < 120);
  REQUIRE(seeded_permutation(50, 9) == seeded_permutation(50, 9));
}

TEST_CASE("channel statistics match their closed form", "[data][dataset]") {
  Dataset d;
  d.channels = 2;
  d.height = 1;
  d.width = 2;
  d.classes = 1;
  d.labels = {0, 0};
  // Channel 0 sees {0, 255, 255, 0}; channel 1 sees {51, 51, 102, 102}.
  d.pixels = {0, 255, 51, 51, 255, 0, 102, 102};
  const ChannelStats s = compute_channel_stats(d);
  REQUIRE(s.mean[0] == Approx(0.5));
  REQUIRE(s.std[0] == Approx(0.5));
  REQUIRE(s.mean[1] == Approx(0.3));
  REQUIRE(s.std[1] == Approx(0.1));
  d.labels[1] = 1;
  REQUIRE_THROWS_WITH(d.validate(), Contains("label 1") && Contains("out of range"));
}

// ---------------------------------------------------------------- batch loader

namespace {

std::vector<Batch> whole_epoch(BatchLoader& loader, int64_t epoch, int64_t first = 0) {
  loader.start_epoch(epoch, first);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

std::vector<int64_t> visit_order(const std::vector<Batch>& batches) {
  std::vector<int64_t> order;
  for (const Batch& b : batches) order.insert(order.end(), b.indices.begin(), b.indices.end());
  return order;
}

}  // namespace

TEST_CASE("loader visits every sample once per epoch in a seeded order", "[data][loader]") {
  const Dataset d = tiny_dataset(23, 1, 2, 2, 3);
  LoaderOptions o;
  o.batch_size = 5;
  o.seed = 17;
  BatchLoader loader(d, o);
  REQUIRE(loader.batches_per_epoch() == 5);

  const auto e0 = whole_epoch(loader, 0);
  REQUIRE(e0.size() == 5);
  REQUIRE(e0.back().size() == 3);
  auto order0 = visit_order(e0);
  std::vector<int64_t> sorted = order0;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 23; ++i) REQUIRE(sorted[i] == i);
  for (const Batch& b : e0) {
    REQUIRE(b.images.shape() == Shape{b.size(), 1, 2, 2});
    REQUIRE(b.labels.dtype() == DType::I32);
    for (int64_t k = 0; k < b.size(); ++k) {
      REQUIRE(b.labels.data<int32_t>()[k] == d.labels[b.indices[k]]);
      REQUIRE(b.images.data<float>()[k * 4 + 2] == Approx(d.image(b.indices[k])[2] / 255.0));
    }
  }

  const auto order1 = visit_order(whole_epoch(loader, 1));
  REQUIRE(order1 != order0);
  REQUIRE(visit_order(whole_epoch(loader, 0)) == order0);
  BatchLoader same_seed(d, o);
  REQUIRE(visit_order(whole_epoch(same_seed, 1)) == order1);
  o.seed = 18;
  BatchLoader other_seed(d, o);
  REQUIRE(visit_order(whole_epoch(other_seed, 0)) != order0);

  o.drop_last = true;
  BatchLoader dropping(d, o);
  REQUIRE(dropping.batches_per_epoch() == 4);
  const auto kept = whole_epoch(dropping, 0);
  REQUIRE(kept.size() == 4);
  for (const Batch& b : kept) REQUIRE(b.size() == 5);

  o.shuffle = false;
  BatchLoader in_order(d, o);
  const auto plain = visit_order(whole_epoch(in_order, 3));
  for (int i = 0; i < 20; ++i) REQUIRE(plain[i] == i);
}

TEST_CASE("loader resumes mid-epoch with the same batches", "[data][loader]") {
  const Dataset d =
      make_synthetic({.size = 37, .channels = 3, .height = 6, .width = 5, .classes = 4});
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 99;
  o.augmentation = {2, true};
  o.normalization = normalization_from(d);
  BatchLoader full(d, o);
  const auto all = whole_epoch(full, 7);
  REQUIRE(all.size() == 10);

  BatchLoader resumed(d, o);
  const auto rest = whole_epoch(resumed, 7, 6);
  REQUIRE(rest.size() == 4);
  for (std::size_t k = 0; k < rest.size(); ++k) {
    REQUIRE(rest[k].index == static_cast<int64_t>(6 + k));
    REQUIRE(rest[k].indices == all[6 + k].indices);
    REQUIRE(rest[k].images.to_vector_f32() == all[6 + k].images.to_vector_f32());
    REQUIRE(rest[k].labels.to_vector_f32() == all[6 + k].labels.to_vector_f32());
  }
  REQUIRE(whole_epoch(resumed, 7, 10).empty());
  REQUIRE_THROWS_AS(resumed.start_epoch(7, 11), std::out_of_range);

  // Without the prefetch thread, and restarting an epoch half-way, the batches are the same.
  o.prefetch = false;
  BatchLoader sync(d, o);
  sync.start_epoch(3);
  REQUIRE(sync.next().has_value());
  const auto again = whole_epoch(sync, 7);
  REQUIRE(again.size() == all.size());
  for (std::size_t k = 0; k < all.size(); ++k) {
    REQUIRE(again[k].images.to_vector_f32() == all[k].images.to_vector_f32());
  }
  full.start_epoch(2);  // abandoned with batches pending: must not leak into the next epoch
  REQUIRE(visit_order(whole_epoch(full, 7)) == visit_order(all));
}

TEST_CASE("crop and flip match an explicit pad-crop-mirror", "[data][loader]") {
  // One 2-channel 3x4 image with distinct pixel values 1..24.
  Dataset d;
  d.channels = 2;
  d.height = 3;
  d.width = 4;
  d.classes = 1;
  d.description = "known image";
  d.labels.assign(1, 0);
  for (int k = 0; k < 24; ++k) d.pixels.push_back(static_cast<uint8_t>(k + 1));
  const int pad = 2;
  LoaderOptions o;
  o.batch_size = 1;
  o.seed = 4;
  o.augmentation = {pad, true};
  BatchLoader loader(d, o);

  std::set<std::tuple<int, int, bool>> seen;
  int flips = 0;
  const int epochs = 1000;
  for (int e = 0; e < epochs; ++e) {
    const auto batches = whole_epoch(loader, e);
    const SampleAugmentation a = draw_augmentation(o.augmentation, o.seed, e, 0);
    REQUIRE(a.crop_y >= 0);
    REQUIRE(a.crop_y <= 2 * pad);
    REQUIRE(a.crop_x >= 0);
    REQUIRE(a.crop_x <= 2 * pad);
    seen.insert({a.crop_y, a.crop_x, a.flip});
    flips += a.flip;
    const std::vector<float> got = batches.at(0).images.to_vector_f32();
    for (int c = 0; c < 2; ++c) {
      // Pad with zeros, cut the window, mirror the rows.
      std::vector<std::vector<int>> padded(3 + 2 * pad, std::vector<int>(4 + 2 * pad, 0));
      for (int y = 0; y < 3; ++y) {
        for (int x = 0; x < 4; ++x) padded[y + pad][x + pad] = d.pixels[(c * 3 + y) * 4 + x];
      }
      for (int y = 0; y < 3; ++y) {
        std::vector<int> row(padded[y + a.crop_y].begin() + a.crop_x,
                             padded[y + a.crop_y].begin() + a.crop_x + 4);
        if (a.flip) std::reverse(row.begin(), row.end());
        for (int x = 0; x < 4; ++x) REQUIRE(got[(c * 3 + y) * 4 + x] == Approx(row[x] / 255.0));
      }
    }
  }
  REQUIRE(seen.size() == 5 * 5 * 2);  // every offset and both mirror states occur
  REQUIRE(flips > epochs / 2 - 80);
  REQUIRE(flips < epochs / 2 + 80);
}

TEST_CASE("normalization maps pixel v to (v / 255 - mean) / std", "[data][loader]") {
  Dataset d;
  d.channels = 2;
  d.height = 1;
  d.width = 3;
  d.classes = 2;
  d.labels = {1};
  d.pixels = {0, 128, 255, 10, 20, 30};
  LoaderOptions o;
  o.batch_size = 1;
  o.normalization = {{0.5f, 0.25f}, {0.2f, 0.5f}};
  BatchLoader loader(d, o);
  loader.start_epoch(0);
  const std::vector<float> x = loader.next()->images.to_vector_f32();
  const double mean[] = {0.5, 0.25}, sd[] = {0.2, 0.5};
  for (int c = 0; c < 2; ++c) {
    for (int k = 0; k < 3; ++k) {
      const double v = d.pixels[c * 3 + k];
      REQUIRE(x[c * 3 + k] == Approx((v / 255.0 - mean[c]) / sd[c]).epsilon(1e-6));
    }
  }
  // Padding is a black pixel before normalization.
  o.augmentation.crop_padding = 1;
  BatchLoader padded(d, o);
  bool saw_padding = false;
  for (int e = 0; e < 20 && !saw_padding; ++e) {
    padded.start_epoch(e);
    const SampleAugmentation a = draw_augmentation(o.augmentation, o.seed, e, 0);
    const std::vector<float> p = padded.next()->images.to_vector_f32();
    if (a.crop_y != 1) {  // the single row comes from the padding
      saw_padding = true;
      REQUIRE(p[0] == Approx(-0.5 / 0.2));
      REQUIRE(p[3] == Approx(-0.25 / 0.5));
    }
  }
  REQUIRE(saw_padding);

  o.normalization = {{0.5f}, {0.2f}};
  REQUIRE_THROWS_WITH(BatchLoader(d, o), Contains("1 means") && Contains("2 channels"));
  o.normalization = {{0.5f, 0.5f}, {0.2f, 0.0f}};
  REQUIRE_THROWS_WITH(BatchLoader(d, o), Contains("std[1]"));
}

TEST_CASE("loader rethrows worker errors in order and shuts down cleanly", "[data][loader]") {
  Dataset d = tiny_dataset(10, 1, 2, 2, 3);
  LoaderOptions o;
  o.batch_size = 2;
  o.shuffle = false;
  {
    BatchLoader never_started(d, o);
    REQUIRE_THROWS_AS(never_started.next(), std::logic_error);
  }
  {
    BatchLoader abandoned(d, o);  // the worker fills its queue and blocks; must still join
    abandoned.start_epoch(0);
    REQUIRE(abandoned.next()->index == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  BatchLoader loader(d, o);
  d.labels[5] = 7;  // corrupted after the loader checked it: batch 2 fails
  loader.start_epoch(0);
  REQUIRE(loader.next()->index == 0);
  REQUIRE(loader.next()->index == 1);
  REQUIRE_THROWS_WITH(loader.next(), Contains("label 7") && Contains("sample 5"));
  REQUIRE_THROWS_WITH(loader.next(), Contains("label 7"));
  d.labels[5] = 2;
  REQUIRE(whole_epoch(loader, 0).size() == 5);
}
