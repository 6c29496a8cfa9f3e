#pragma once

// Umbrella header: everything libaifc offers.
#include "aifc/benchmark.hpp"
#include "aifc/client_group.hpp"
#include "aifc/dataset.hpp"
#include "aifc/error.hpp"
#include "aifc/histogram.hpp"
#include "aifc/metrics.hpp"
#include "aifc/observer.hpp"
#include "aifc/record.hpp"
#include "aifc/schedule.hpp"
#include "aifc/simulator.hpp"
#include "aifc/slurm.hpp"
#include "aifc/ssh.hpp"
#include "aifc/version.hpp"
#include "aifc/vllm_client.hpp"
