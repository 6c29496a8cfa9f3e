#pragma once

#include <string>

#include "aifc/record.hpp"

namespace aifc {

/// Appends a record's JSON form as text: the same text as dumping to_json's value (one line),
/// without building that value, which costs several times more for a detailed result.
void append_record_json(std::string& out, const RequestRecord& r);

}  // namespace aifc
