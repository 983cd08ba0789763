// A folder of images, one subfolder per class: root/<class_name>/*.png|jpg|jpeg.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace st::data {

struct ImageFolderOptions {
  int channels = 3;  // 1 (grey) or 3 (RGB); images are converted to it
  // Target size. With `resize`, every image is resampled to it (see resize.h). Without, every
  // image must already have it; 0 x 0 means "the size of the first image".
  int height = 0;
  int width = 0;
  bool resize = false;
};

// Classes are the subfolders sorted by name (hidden ones skipped); files within a class are
// sorted by name and picked by extension, case-insensitively. Errors name the file: one
// that cannot be decoded, one whose size differs from the required one.
// Sizes are checked before anything is decoded: an image over kMaxImageSide on a side is
// refused from its header, and the whole set (images x target size) must fit
// check_dataset_size.
Dataset load_image_folder(const std::filesystem::path& root, const ImageFolderOptions& opts);

// One PNG/JPEG file image decoded to `channels` (1 or 3) planes, CHW; `origin` names it in
// errors. The header's size is checked against `max_side` before decoding.
struct DecodedImage {
  int height = 0, width = 0;
  std::vector<uint8_t> chw;
};
DecodedImage decode_image_bytes(const std::vector<uint8_t>& bytes, int channels,
                                const std::string& origin, int64_t max_side = kMaxImageSide);

}  // namespace st::data
