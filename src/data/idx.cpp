#include "data/idx.h"

#include <stdexcept>

#include "data/file_bytes.h"
#include "io/validate.h"

namespace st::data {

namespace {

constexpr uint8_t kUbyteType = 0x08;

InputError idx_error(const std::filesystem::path& path, const std::string& what) {
  return InputError("IDX file " + path.string() + ": " + what);
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

std::string hex_byte(uint8_t b) {
  static const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

// The dimensions of an unsigned-byte IDX array with `ndims` dimensions, after checking the
// header and that the data size matches them exactly.
std::vector<int64_t> parse_idx_header(const std::filesystem::path& path,
                                      const std::vector<uint8_t>& bytes, int ndims) {
  if (bytes.size() < 4) {
    throw idx_error(path, "truncated: " + std::to_string(bytes.size()) +
                              " bytes, shorter than the 4-byte magic");
  }
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != kUbyteType || bytes[3] != ndims) {
    throw idx_error(path, "bad magic " + hex_byte(bytes[0]) + " " + hex_byte(bytes[1]) + " " +
                              hex_byte(bytes[2]) + " " + hex_byte(bytes[3]) +
                              ", expected 0x00 0x00 0x08 " + hex_byte(uint8_t(ndims)) +
                              " (unsigned bytes, " + std::to_string(ndims) + " dimensions)");
  }
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  if (bytes.size() < header) {
    throw idx_error(path, "truncated: " + std::to_string(bytes.size()) +
                              " bytes, shorter than the " + std::to_string(header) +
                              "-byte header");
  }
  std::vector<int64_t> dims(ndims);
  uint64_t expected = 1;
  for (int i = 0; i < ndims; ++i) {
    dims[i] = read_be32(bytes.data() + 4 + 4 * i);
    // Each dimension is below 2^32, but their product can pass 2^64.
    if (__builtin_mul_overflow(expected, static_cast<uint64_t>(dims[i]), &expected))
      throw idx_error(path, "header dimensions multiply past 2^64 bytes");
  }
  const uint64_t have = bytes.size() - header;
  if (have < expected) {
    throw idx_error(path, "truncated: header promises " + std::to_string(expected) +
                              " data bytes, file has " + std::to_string(have));
  }
  if (have > expected) {
    throw idx_error(path, "size mismatch: header promises " + std::to_string(expected) +
                              " data bytes, file has " + std::to_string(have));
  }
  return dims;
}

std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& prefix,
                                    const std::string& kind) {
  std::vector<std::string> tried;
  for (const char* sep : {"-", "."}) {
    for (const char* ext : {"", ".gz"}) {
      const std::string name = prefix + sep + kind + "-ubyte" + ext;
      const std::filesystem::path p = dir / name;
      if (std::filesystem::is_regular_file(p)) return p;
      tried.push_back(name);
    }
  }
  std::string list;
  for (const std::string& t : tried) list += (list.empty() ? "" : ", ") + t;
  throw InputError("IDX directory " + dir.string() + ": none of " + list + " exists");
}

}  // namespace

Dataset parse_idx(const std::vector<uint8_t>& img, const std::vector<uint8_t>& lab,
                  const std::filesystem::path& images_path,
                  const std::filesystem::path& labels_path, int classes,
                  std::vector<std::string> class_names) {
  if (classes <= 0 || classes > 256) {
    throw std::invalid_argument("load_idx: classes " + std::to_string(classes) +
                                " must be in [1, 256]");
  }
  const std::vector<int64_t> idims = parse_idx_header(images_path, img, 3);
  const std::vector<int64_t> ldims = parse_idx_header(labels_path, lab, 1);
  if (idims[0] != ldims[0]) {
    throw InputError("IDX files " + images_path.string() + " and " + labels_path.string() +
                     ": size mismatch, " + std::to_string(idims[0]) + " images but " +
                     std::to_string(ldims[0]) + " labels");
  }
  if (idims[1] == 0 || idims[2] == 0 || idims[1] > kMaxImageSide || idims[2] > kMaxImageSide) {
    throw idx_error(images_path, "image size " + std::to_string(idims[1]) + "x" +
                                     std::to_string(idims[2]) + " must be in [1, " +
                                     std::to_string(kMaxImageSide) + "] per side");
  }
  Dataset d;
  d.channels = 1;
  d.height = static_cast<int>(idims[1]);
  d.width = static_cast<int>(idims[2]);
  d.classes = classes;
  d.class_names = std::move(class_names);
  d.description = images_path.string();
  d.pixels.assign(img.begin() + 16, img.end());
  d.labels.resize(ldims[0]);
  for (int64_t i = 0; i < ldims[0]; ++i) {
    const uint8_t l = lab[8 + i];
    if (l >= classes) {
      throw idx_error(labels_path, "label " + std::to_string(l) + " of sample " +
                                       std::to_string(i) + " is out of range [0, " +
                                       std::to_string(classes) + ")");
    }
    d.labels[i] = l;
  }
  d.validate();
  return d;
}

Dataset load_idx(const std::filesystem::path& images_path, const std::filesystem::path& labels_path,
                 int classes, std::vector<std::string> class_names) {
  const std::vector<uint8_t> img = read_file_bytes(images_path);
  const std::vector<uint8_t> lab = read_file_bytes(labels_path);
  return parse_idx(img, lab, images_path, labels_path, classes, std::move(class_names));
}

Dataset load_idx_dir(const std::filesystem::path& dir, DataSplit split,
                     std::vector<std::string> class_names) {
  if (!std::filesystem::is_directory(dir)) {
    throw InputError("IDX directory " + dir.string() + " does not exist");
  }
  const std::string prefix = split == DataSplit::Train ? "train" : "t10k";
  const std::filesystem::path images = find_idx_file(dir, prefix + "-images", "idx3");
  const std::filesystem::path labels = find_idx_file(dir, prefix + "-labels", "idx1");
  const int classes = class_names.empty() ? 10 : static_cast<int>(class_names.size());
  return load_idx(images, labels, classes, std::move(class_names));
}

std::vector<std::string> mnist_class_names() {
  return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}

std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

}  // namespace st::data
