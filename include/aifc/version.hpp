#pragma once

namespace aifc {

/// The library version, from the top-level VERSION file.
inline constexpr const char* version() noexcept { return AIFC_VERSION_STRING; }

}  // namespace aifc
