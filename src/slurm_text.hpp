#pragma once

#include <string>

#include "aifc/slurm.hpp"

namespace aifc::detail {

/// `scontrol show job -o ID` output (one line per job or array task) as one JobInfo.
JobInfo parse_scontrol_jobs(const std::string& job_id, const std::string& text);
/// Refuses anything but a numeric job id (array tasks: 12_3), before it reaches a shell.
void check_job_id(const std::string& id);
/// A command's complaint, trimmed: stderr, or stdout when stderr is empty.
std::string trim_output(const std::string& err, const std::string& out);

}  // namespace aifc::detail
