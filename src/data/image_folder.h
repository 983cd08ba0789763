// A folder of images, one subfolder per class: root/<class_name>/*.png|jpg|jpeg.
#pragma once

#include <filesystem>

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
Dataset load_image_folder(const std::filesystem::path& root, const ImageFolderOptions& opts);

}  // namespace st::data
