// The one translation unit that compiles stb_image's implementation. Only the PNG and JPEG
// decoders: image folders hold .png/.jpg/.jpeg files, and stb picks the decoder from the
// content, so a ".png" holding PNM text reached the PNM parser (a signed overflow, found by
// fuzzing).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#include <stb_image.h>
