// What it costs a receiver to take small chunks that arrive one at a time on many TCP
// connections, the pattern of a real server streaming every answer at 20-100 tokens/s:
//   epoll    epoll_wait + one recvmsg per ready socket (aifc's event loop today)
//   uring    io_uring multishot recvmsg into a provided-buffer ring, completions taken in batches
//   epoll-delayed-ack   epoll, and TCP_QUICKACK cleared after every read (what ACKs cost)
// Both read the kernel's receive timestamp (SO_TIMESTAMPNS) of every read, as aifc must.
// Then the floor under all of them: one recvmsg of a segment already queued on each of the
// sockets, in a loop with no wake-up, no epoll and no parsing (the kernel's own price per lone
// segment), with the ACK sent at once (the default) and delayed (TCP_QUICKACK cleared first).
//
// usage: aifc_recv_paths [streams=1000] [chunks/s per stream=50] [seconds=5] [batch_us=0]
// The sender runs on CPU 0, the receiver on CPU 1 (when there are two); the receiver's CPU time is
// its thread's own (CLOCK_THREAD_CPUTIME_ID). batch_us > 0 lets the receiver wait that long for
// more completions before it handles them (what coalescing can still save).
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kChunk = 200;  // about one streamed token's SSE event

std::int64_t now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

// The calling thread's CPU time. Not getrusage(RUSAGE_THREAD): for a running thread it lags by
// up to a scheduler tick, which is most of a short interval such as the floor's.
double thread_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

void pin(int cpu) {
  if (std::thread::hardware_concurrency() < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void die(const char* what) {
  std::perror(what);
  std::exit(1);
}

// `n` connected loopback pairs: senders[i] writes, receivers[i] reads.
void make_pairs(int n, std::vector<int>& senders, std::vector<int>& receivers) {
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  listen(listener, 4096);
  for (int i = 0; i < n; ++i) {
    const int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
    const int s = accept(listener, nullptr, nullptr);
    if (s < 0) die("accept");
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    senders.push_back(s);
    receivers.push_back(c);
  }
  close(listener);
}

struct Totals {
  std::uint64_t bytes = 0, reads = 0, waits = 0;
  std::int64_t last_stamp = 0;
};

// Keeps the SO_TIMESTAMPNS stamp of a read if `c` is one, as aifc's event loop does.
void take_stamp(const cmsghdr* c, Totals& t) {
  if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_TIMESTAMPNS) return;
  timespec ts{};
  std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
  t.last_stamp = ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// One recvmsg with its SO_TIMESTAMPNS stamp, counted in `t`; false when nothing was read.
bool read_stamped(int fd, Totals& t) {
  char data[16384];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
  iovec iov{data, sizeof data};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  const ssize_t got = recvmsg(fd, &msg, MSG_DONTWAIT);
  if (got <= 0) return false;
  t.bytes += static_cast<std::uint64_t>(got);
  ++t.reads;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) take_stamp(c, t);
  return true;
}

void receive_epoll(const std::vector<int>& fds, const std::atomic<bool>& done, Totals& t,
                   std::int64_t batch_ns, bool delayed_acks) {
  const int ep = epoll_create1(0);
  for (std::size_t i = 0; i < fds.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
  }
  std::vector<epoll_event> events(1024);
  while (!done.load(std::memory_order_relaxed)) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 10);
    ++t.waits;
    for (int i = 0; i < n; ++i) {
      if (read_stamped(fds[events[i].data.u64], t)) {
        if (delayed_acks) {  // an experiment: ask for a delayed ACK again after every read
          int zero = 0;
          setsockopt(fds[events[i].data.u64], IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
        }
      }
    }
    if (batch_ns > 0) {
      timespec pause{0, batch_ns};
      nanosleep(&pause, nullptr);
    }
  }
  close(ep);
}

void receive_uring(const std::vector<int>& fds, const std::atomic<bool>& done, Totals& t,
                   std::int64_t batch_ns) {
  io_uring ring{};
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = 16384;
  if (io_uring_queue_init_params(4096, &ring, &params) != 0) {
    params.flags = IORING_SETUP_CQSIZE;  // older kernels
    if (io_uring_queue_init_params(4096, &ring, &params) != 0) die("io_uring_queue_init");
  }
  // A ring of provided buffers: the kernel picks one per completion, we hand it back after use.
  constexpr unsigned kBuffers = 4096, kBufferSize = 2048;
  const std::size_t ring_bytes = kBuffers * sizeof(io_uring_buf);
  void* ring_mem =
      mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  auto* br = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_ring_init(br);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br);
  reg.ring_entries = kBuffers;
  reg.bgid = 0;
  if (io_uring_register_buf_ring(&ring, &reg, 0) != 0) die("io_uring_register_buf_ring");
  std::vector<char> buffers(static_cast<std::size_t>(kBuffers) * kBufferSize);
  const int mask = io_uring_buf_ring_mask(kBuffers);
  for (unsigned i = 0; i < kBuffers; ++i)
    io_uring_buf_ring_add(br, buffers.data() + static_cast<std::size_t>(i) * kBufferSize,
                          kBufferSize, static_cast<unsigned short>(i), mask, static_cast<int>(i));
  io_uring_buf_ring_advance(br, kBuffers);
  msghdr templ{};
  templ.msg_controllen = CMSG_SPACE(sizeof(timespec));
  auto arm = [&](std::size_t i) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    if (sqe == nullptr) {
      io_uring_submit(&ring);
      sqe = io_uring_get_sqe(&ring);
    }
    io_uring_prep_recvmsg_multishot(sqe, fds[i], &templ, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, i);
  };
  for (std::size_t i = 0; i < fds.size(); ++i) arm(i);
  io_uring_submit(&ring);
  __kernel_timespec timeout{0, 10'000'000};
  while (!done.load(std::memory_order_relaxed)) {
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &timeout, nullptr);
    ++t.waits;
    unsigned head, seen = 0, returned = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      const std::size_t i = io_uring_cqe_get_data64(cqe);
      if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        const unsigned id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        char* buf = buffers.data() + static_cast<std::size_t>(id) * kBufferSize;
        msghdr msg = templ;
        io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buf, cqe->res, &msg);
        if (out != nullptr) {
          t.bytes += io_uring_recvmsg_payload_length(out, cqe->res, &msg);
          ++t.reads;
          for (cmsghdr* c = io_uring_recvmsg_cmsg_firsthdr(out, &msg); c != nullptr;
               c = io_uring_recvmsg_cmsg_nexthdr(out, &msg, c))
            take_stamp(c, t);
        }
        io_uring_buf_ring_add(br, buf, kBufferSize, static_cast<unsigned short>(id), mask,
                              static_cast<int>(returned++));
      }
      if (!(cqe->flags & IORING_CQE_F_MORE) && cqe->res != -ECANCELED) arm(i);  // re-arm
    }
    io_uring_buf_ring_advance(br, static_cast<int>(returned));
    io_uring_cq_advance(&ring, seen);
    if (batch_ns > 0) {
      timespec pause{0, batch_ns};
      nanosleep(&pause, nullptr);
    }
  }
  io_uring_queue_exit(&ring);
  munmap(ring_mem, ring_bytes);
}

}  // namespace

// CPU per recvmsg of one 200-byte segment that is already waiting on each socket: a sender on
// the other CPU writes one chunk to every stream, and after a pause (so every segment has
// arrived and been queued) this thread reads each socket once. No wake-up, no epoll, nothing
// parsed: what the kernel charges a receiver for one segment, the floor under any receive path.
double queued_floor_us(const std::vector<int>& senders, const std::vector<int>& receivers,
                       bool delayed_ack) {
  const std::string chunk(kChunk, 'x');
  Totals t;
  double cpu = 0;
  for (int round = 0; round < 20; ++round) {
    // Sent from the other CPU, as a server's chunks come: the receiver finds them cache-cold.
    std::thread sender([&] {
      pin(0);
      for (int fd : senders) send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    });
    sender.join();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const double start = thread_cpu_s();
    for (int fd : receivers) {
      if (delayed_ack) {
        int zero = 0;
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
      }
      read_stamped(fd, t);
    }
    cpu += thread_cpu_s() - start;
  }
  return cpu / static_cast<double>(t.reads) * 1e6;
}

int main(int argc, char** argv) {
  const int streams = argc > 1 ? std::atoi(argv[1]) : 1000;
  const double per_stream = argc > 2 ? std::atof(argv[2]) : 50;
  const double seconds = argc > 3 ? std::atof(argv[3]) : 5;
  const std::int64_t batch_ns = argc > 4 ? std::atoll(argv[4]) * 1000 : 0;
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  std::printf("%d streams x %.0f chunks/s of %zu bytes, %.0f s per mode, batch %lld us\n", streams,
              per_stream, kChunk, seconds, static_cast<long long>(batch_ns / 1000));
  for (const char* mode : {"epoll", "uring", "epoll-delayed-ack"}) {
    std::vector<int> senders, receivers;
    make_pairs(streams, senders, receivers);
    std::atomic<bool> done{false};
    Totals totals;
    double cpu = 0;
    std::thread receiver([&] {
      pin(1);
      prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
      const double start = thread_cpu_s();
      if (std::strncmp(mode, "epoll", 5) == 0)
        receive_epoll(receivers, done, totals, batch_ns, std::strcmp(mode, "epoll") != 0);
      else
        receive_uring(receivers, done, totals, batch_ns);
      cpu = thread_cpu_s() - start;
    });
    // The sender: chunk k goes to stream k % streams at start + k / (streams * per_stream), so
    // each stream gets its chunks evenly spaced and (almost) never two at once.
    pin(0);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    const std::string chunk(kChunk, 'x');
    const double total_rate = streams * per_stream;
    const std::int64_t start = now_ns() + 100'000'000;
    const auto total = static_cast<std::uint64_t>(total_rate * seconds);
    std::uint64_t sent = 0;
    const double sender_cpu_start = thread_cpu_s();
    for (std::uint64_t k = 0; k < total; ++k) {
      const std::int64_t due =
          start + static_cast<std::int64_t>(static_cast<double>(k) * 1e9 / total_rate);
      const std::int64_t wait = due - now_ns();
      if (wait > 20'000) {
        timespec t{static_cast<time_t>(due / 1'000'000'000),
                   static_cast<long>(due % 1'000'000'000)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nullptr);
      }
      if (send(senders[k % static_cast<std::uint64_t>(streams)], chunk.data(), chunk.size(),
               MSG_NOSIGNAL) == static_cast<ssize_t>(chunk.size()))
        ++sent;
    }
    const std::int64_t end = now_ns();
    const double sender_cpu = thread_cpu_s() - sender_cpu_start;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    done = true;
    receiver.join();
    const double chunks = static_cast<double>(totals.bytes) / kChunk;
    std::printf(
        "%-17s sent %llu chunks at %.0f/s; received %.0f; receiver CPU %.3f s = %.2f us/chunk; "
        "%.2f chunks per read, %.2f reads per wake-up; sender CPU %.2f us/chunk\n",
        mode, static_cast<unsigned long long>(sent),
        static_cast<double>(sent) * 1e9 / static_cast<double>(end - start), chunks, cpu,
        cpu / chunks * 1e6, chunks / static_cast<double>(totals.reads),
        static_cast<double>(totals.reads) / static_cast<double>(totals.waits),
        sender_cpu / static_cast<double>(sent) * 1e6);
    for (int fd : senders) close(fd);
    for (int fd : receivers) close(fd);
  }
  std::vector<int> senders, receivers;
  make_pairs(streams, senders, receivers);
  pin(1);
  const double immediate = queued_floor_us(senders, receivers, false);
  const double delayed = queued_floor_us(senders, receivers, true);
  std::printf(
      "floor: one recvmsg of a queued segment, no wake-up: %.2f us/chunk with the ACK sent at "
      "once, %.2f us with TCP_QUICKACK cleared first (that setsockopt included)\n",
      immediate, delayed);
  for (int fd : senders) close(fd);
  for (int fd : receivers) close(fd);
}
