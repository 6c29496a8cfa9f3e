#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aifc/slurm.hpp"
#include "util/process.hpp"

namespace aifc::detail {

/// Where Slurm's command-line tools run: on this machine, or on a login node over SSH. The one
/// seam between the two; everything else about sbatch, scontrol and scancel (job ids, output,
/// messages) is shared by make_command_backend.
class SlurmCommands {
 public:
  virtual ~SlurmCommands() = default;
  virtual std::string name() const = 0;   ///< the backend's name: "cli" or "ssh"
  virtual std::string place() const = 0;  ///< for messages: "" here, " on HOST" over SSH
  /// `sbatch --parsable --export=ALL` with `script`; the job's environment reaches sbatch
  /// without ever being on a command line.
  virtual ProcessResult sbatch(const JobSpec& spec, const std::string& script) = 0;
  /// A tool with plain words as arguments (checked job ids only).
  virtual ProcessResult run(const std::vector<std::string>& argv) = 0;
};

/// The SlurmBackend over a SlurmCommands: submit through sbatch, state through
/// `scontrol show job -o`, cancel through scancel.
std::unique_ptr<SlurmBackend> make_command_backend(std::unique_ptr<SlurmCommands> commands);

/// `scontrol show job -o ID` output (one line per job or array task) as one JobInfo.
JobInfo parse_scontrol_jobs(const std::string& job_id, const std::string& text);
/// Refuses anything but a numeric job id (array tasks: 12_3), before it reaches a shell.
void check_job_id(const std::string& id);
/// A command's complaint, trimmed: stderr, or stdout when stderr is empty.
std::string trim_output(const std::string& err, const std::string& out);

}  // namespace aifc::detail
