// SPDX-License-Identifier: Apache-2.0
/*
 * vmm: a minimal arm64 KVM VMM for the pmu-replay recording harness.
 *
 * One VM, one vCPU, one vCPU thread named like QEMU's ("CPU 0/KVM"), no in-kernel irqchip
 * (a vPMU without an in-kernel GIC needs no PMU interrupt: kvm_arm_pmu_v3_enable()).
 * It runs the bare-metal guest of guest.S and records:
 *
 *   --exits FILE   every return of KVM_RUN: exit reason, with KVM_EXIT_FAIL_ENTRY's reason and
 *                  CPU and KVM_EXIT_MMIO's address and data;
 *   --reads FILE   every guest read the guest reported (CNTVCT_EL0, PMCCNTR_EL0);
 *   --marker FILE  (tracefs trace_marker) the vCPU init, every read and every failed entry, so
 *                  that they land in the host trace with the trace's own clock.
 *
 * Times are CLOCK_MONOTONIC nanoseconds (the trace clock "mono"). PMU modes:
 *
 *   --pmu default       PMU_V3 feature; KVM picks the PMU of the CPU that runs the first
 *                       KVM_ARM_VCPU_INIT (kvm_arm_set_default_pmu); --init-cpu pins that CPU
 *   --pmu set:NAME      PMU_V3 feature and KVM_ARM_VCPU_PMU_V3_SET_PMU to the perf type of
 *                       /sys/bus/event_source/devices/NAME
 *   --pmu none          no PMU_V3 feature
 *
 * On KVM_EXIT_FAIL_ENTRY the vCPU thread sleeps --fail-sleep-us and enters again (the harness
 * moves it back to a supported CPU on its own schedule). After each read it sleeps
 * --read-sleep-us, which bounds the read rate (and the trace's size) whatever the speed of the
 * emulation. It stops on SIGTERM or SIGINT (the harness sends SIGTERM when its schedule is
 * done), after --count reads or after --seconds seconds, whichever comes first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define GUEST_RAM_BASE 0x40000000ULL /* guest.ld */
#define GUEST_RAM_SIZE (2ULL << 20)
#define REPORT_BASE 0x10000000ULL /* guest.S */
#define REPORT_CNTVCT 0x00
#define REPORT_PMCCNTR 0x08
#define REPORT_UNDEF 0x10
#define REPORT_DFR0 0x18
#define REPORT_PMCR 0x20

enum pmu_mode { PMU_DEFAULT, PMU_SET, PMU_NONE };

static struct {
	const char *payload;
	enum pmu_mode mode;
	const char *pmu_name;
	int init_cpu;
	long count;
	double seconds;
	long spin;
	long fail_sleep_us;
	long read_sleep_us;
	const char *exits_path;
	const char *reads_path;
	const char *marker_path;
	const char *tid_path;
} opt = { .init_cpu = -1, .count = 100000, .seconds = 60.0, .spin = 20000, .fail_sleep_us = 2000 };

static int kvm_fd, vm_fd, vcpu_fd;
static struct kvm_run *run;
static FILE *exits_csv, *reads_csv;
static int marker_fd = -1;
static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	int err = errno;

	va_start(ap, fmt);
	fprintf(stderr, "vmm: ");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (%s)\n", strerror(err));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* One line into the host trace (tracefs trace_marker), if asked for. */
static void mark(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	if (marker_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(marker_fd, buf, (size_t)n) < 0)
		perror("vmm: trace_marker");
}

static const char *exit_name(uint32_t reason)
{
	switch (reason) {
	case KVM_EXIT_UNKNOWN: return "UNKNOWN";
	case KVM_EXIT_MMIO: return "MMIO";
	case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
	case KVM_EXIT_INTR: return "INTR";
	case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
	case KVM_EXIT_SYSTEM_EVENT: return "SYSTEM_EVENT";
	case KVM_EXIT_ARM_NISV: return "ARM_NISV";
	default: return "OTHER";
	}
}

static uint64_t core_reg_id(size_t offset)
{
	return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offset / sizeof(uint32_t));
}

static void set_core_reg(size_t offset, uint64_t value)
{
	struct kvm_one_reg reg = { .id = core_reg_id(offset), .addr = (uint64_t)(uintptr_t)&value };

	if (ioctl(vcpu_fd, KVM_SET_ONE_REG, &reg) < 0)
		die("KVM_SET_ONE_REG %#zx", offset);
}

static int perf_type_of(const char *name)
{
	char path[256];
	FILE *f;
	int type;

	snprintf(path, sizeof(path), "/sys/bus/event_source/devices/%s/type", name);
	f = fopen(path, "r");
	if (!f)
		die("open %s", path);
	if (fscanf(f, "%d", &type) != 1)
		die("read %s", path);
	fclose(f);
	return type;
}

static void pmu_attr(uint64_t attr, void *addr, const char *what)
{
	struct kvm_device_attr a = {
		.group = KVM_ARM_VCPU_PMU_V3_CTRL, .attr = attr, .addr = (uint64_t)(uintptr_t)addr,
	};

	if (ioctl(vcpu_fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		die("KVM_SET_DEVICE_ATTR %s", what);
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity %d", cpu);
}

/* KVM_CREATE_VCPU, KVM_ARM_VCPU_INIT (here the default PMU is chosen) and the PMU attributes. */
static void init_vcpu(void)
{
	struct kvm_vcpu_init init;
	int cpu, mmap_size, type = -1;

	if (opt.init_cpu >= 0)
		pin(opt.init_cpu);
	vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (vcpu_fd < 0)
		die("KVM_CREATE_VCPU");
	if (ioctl(vm_fd, KVM_ARM_PREFERRED_TARGET, &init) < 0)
		die("KVM_ARM_PREFERRED_TARGET");
	if (opt.mode != PMU_NONE)
		init.features[0] |= 1U << KVM_ARM_VCPU_PMU_V3;
	cpu = sched_getcpu();
	if (ioctl(vcpu_fd, KVM_ARM_VCPU_INIT, &init) < 0)
		die("KVM_ARM_VCPU_INIT on CPU %d", cpu);
	if (sched_getcpu() != cpu)
		fprintf(stderr, "vmm: warning: moved from CPU %d during KVM_ARM_VCPU_INIT\n", cpu);
	if (opt.mode == PMU_SET) {
		type = perf_type_of(opt.pmu_name);
		pmu_attr(KVM_ARM_VCPU_PMU_V3_SET_PMU, &type, "SET_PMU");
	}
	if (opt.mode != PMU_NONE)
		pmu_attr(KVM_ARM_VCPU_PMU_V3_INIT, NULL, "PMU_V3_INIT");
	printf("vmm: vcpu_init cpu=%d pmu=%s set_pmu_type=%d tid=%ld\n", cpu,
	       opt.mode == PMU_NONE ? "none" : opt.mode == PMU_SET ? opt.pmu_name : "default", type,
	       (long)syscall(SYS_gettid));
	fflush(stdout);
	mark("pmu-replay-vmm: vcpu_init cpu=%d mode=%s set_pmu_type=%d", cpu,
	     opt.mode == PMU_NONE ? "none" : opt.mode == PMU_SET ? "set" : "default", type);

	mmap_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");
	set_core_reg(offsetof(struct kvm_regs, regs.pc), GUEST_RAM_BASE);
	set_core_reg(offsetof(struct kvm_regs, regs.regs[0]), (uint64_t)opt.spin);
}

/*
 * One row per return of KVM_RUN. exit_reason is read also when KVM_RUN fails: with a
 * userspace irqchip, a timer level change returns -EINTR with KVM_EXIT_INTR
 * (kvm_vcpu_exit_request()).
 */
static void log_exit(uint64_t ts, int ret, int err)
{
	fprintf(exits_csv, "%llu,0,%d,%d,%d,%u,%s,", (unsigned long long)ts, sched_getcpu(), ret,
		ret < 0 ? err : 0, run->exit_reason, exit_name(run->exit_reason));
	if (ret == 0 && run->exit_reason == KVM_EXIT_FAIL_ENTRY)
		fprintf(exits_csv, "%u,%#llx,", run->fail_entry.cpu,
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
	else
		fprintf(exits_csv, ",,");
	if (ret == 0 && run->exit_reason == KVM_EXIT_MMIO) {
		uint64_t data = 0;

		memcpy(&data, run->mmio.data, run->mmio.len <= 8 ? run->mmio.len : 8);
		fprintf(exits_csv, "%#llx,%u,%llu\n", (unsigned long long)run->mmio.phys_addr,
			run->mmio.len, (unsigned long long)data);
	} else {
		fprintf(exits_csv, ",,\n");
	}
}

static void *vcpu_thread(void *arg)
{
	uint64_t start = now_ns(), cntvct = 0, deadline = start + (uint64_t)(opt.seconds * 1e9);
	long reads = 0;
	FILE *f;

	sigset_t set;

	(void)arg;
	/* SIGTERM and SIGINT go to this thread, whose KVM_RUN they interrupt (-EINTR) */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	prctl(PR_SET_NAME, "CPU 0/KVM"); /* QEMU's vCPU thread name: pmu-replay finds it by it */
	if (opt.tid_path) {
		f = fopen(opt.tid_path, "w");
		if (!f)
			die("open %s", opt.tid_path);
		fprintf(f, "%ld\n", (long)syscall(SYS_gettid));
		fclose(f);
	}
	init_vcpu();
	while (!stop && reads < opt.count && now_ns() < deadline) {
		int ret = ioctl(vcpu_fd, KVM_RUN, 0), err = errno;
		uint64_t ts = now_ns();

		log_exit(ts, ret, err);
		if (ret < 0) {
			if (err == EINTR || err == EAGAIN)
				continue;
			errno = err;
			die("KVM_RUN");
		}
		switch (run->exit_reason) {
		case KVM_EXIT_FAIL_ENTRY:
			mark("pmu-replay-vmm: fail_entry cpu=%u reason=%#llx", run->fail_entry.cpu,
			     (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			usleep((useconds_t)opt.fail_sleep_us);
			break;
		case KVM_EXIT_MMIO: {
			uint64_t data = 0, off = run->mmio.phys_addr - REPORT_BASE;

			if (!run->mmio.is_write || run->mmio.phys_addr < REPORT_BASE)
				die("unexpected MMIO at %#llx", (unsigned long long)run->mmio.phys_addr);
			memcpy(&data, run->mmio.data, run->mmio.len <= 8 ? run->mmio.len : 8);
			if (off == REPORT_CNTVCT) {
				cntvct = data;
			} else if (off == REPORT_PMCCNTR || off == REPORT_UNDEF) {
				int undef = off == REPORT_UNDEF;

				reads++;
				fprintf(reads_csv, "%ld,%llu,0,%d,%llu,", reads, (unsigned long long)ts,
					sched_getcpu(), (unsigned long long)cntvct);
				if (undef)
					fprintf(reads_csv, ",%#llx\n", (unsigned long long)data);
				else
					fprintf(reads_csv, "%llu,\n", (unsigned long long)data);
				mark("pmu-replay-vmm: read seq=%ld cntvct=%llu pmccntr=%s%llu", reads,
				     (unsigned long long)cntvct, undef ? "undef esr=" : "",
				     (unsigned long long)data);
				if (opt.read_sleep_us)
					usleep((useconds_t)opt.read_sleep_us);
			} else if (off == REPORT_DFR0 || off == REPORT_PMCR) {
				printf("vmm: guest %s = %#llx\n",
				       off == REPORT_DFR0 ? "ID_AA64DFR0_EL1" : "PMCR_EL0",
				       (unsigned long long)data);
				mark("pmu-replay-vmm: guest %s=%#llx",
				     off == REPORT_DFR0 ? "ID_AA64DFR0_EL1" : "PMCR_EL0",
				     (unsigned long long)data);
			} else {
				die("unexpected MMIO offset %#llx", (unsigned long long)off);
			}
			break;
		}
		case KVM_EXIT_INTR:
			break;
		default:
			die("unexpected exit %u (%s)", run->exit_reason, exit_name(run->exit_reason));
		}
	}
	printf("vmm: %ld reads in %.3f s\n", reads, (double)(now_ns() - start) / 1e9);
	return NULL;
}

static void load_payload(void *ram)
{
	FILE *f = fopen(opt.payload, "rb");
	size_t n;

	if (!f)
		die("open %s", opt.payload);
	n = fread(ram, 1, GUEST_RAM_SIZE, f);
	if (n == 0 || !feof(f))
		die("%s: empty or larger than guest RAM", opt.payload);
	fclose(f);
}

static FILE *open_csv(const char *path, const char *header)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("open %s", path);
	fprintf(f, "%s\n", header);
	return f;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: vmm --payload guest.bin --exits exits.csv --reads vmm-reads.csv\n"
		"           [--pmu default|none|set:PMU_NAME] [--init-cpu CPU] [--count N]\n"
		"           [--seconds S] [--spin N] [--fail-sleep-us US] [--read-sleep-us US]\n"
		"           [--marker TRACE_MARKER]\n"
		"           [--tid-file FILE]\n");
	exit(2);
}

static void parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "payload", required_argument, NULL, 'p' }, { "pmu", required_argument, NULL, 'm' },
		{ "init-cpu", required_argument, NULL, 'c' }, { "count", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 's' }, { "spin", required_argument, NULL, 'l' },
		{ "fail-sleep-us", required_argument, NULL, 'f' },
		{ "read-sleep-us", required_argument, NULL, 'w' },
		{ "exits", required_argument, NULL, 'e' }, { "reads", required_argument, NULL, 'r' },
		{ "marker", required_argument, NULL, 'k' }, { "tid-file", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': opt.payload = optarg; break;
		case 'm':
			if (!strcmp(optarg, "default")) {
				opt.mode = PMU_DEFAULT;
			} else if (!strcmp(optarg, "none")) {
				opt.mode = PMU_NONE;
			} else if (!strncmp(optarg, "set:", 4) && optarg[4]) {
				opt.mode = PMU_SET;
				opt.pmu_name = optarg + 4;
			} else {
				usage();
			}
			break;
		case 'c': opt.init_cpu = atoi(optarg); break;
		case 'n': opt.count = atol(optarg); break;
		case 's': opt.seconds = atof(optarg); break;
		case 'l': opt.spin = atol(optarg); break;
		case 'f': opt.fail_sleep_us = atol(optarg); break;
		case 'w': opt.read_sleep_us = atol(optarg); break;
		case 'e': opt.exits_path = optarg; break;
		case 'r': opt.reads_path = optarg; break;
		case 'k': opt.marker_path = optarg; break;
		case 't': opt.tid_path = optarg; break;
		default: usage();
		}
	}
	if (!opt.payload || !opt.exits_path || !opt.reads_path || optind != argc)
		usage();
}

int main(int argc, char **argv)
{
	struct kvm_userspace_memory_region region;
	struct sigaction sa = { 0 };
	sigset_t blocked;
	pthread_t thread;
	void *ram;

	parse(argc, argv);
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		die("open /dev/kvm");
	if (opt.mode != PMU_NONE && ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PMU_V3) <= 0) {
		errno = ENODEV;
		die("KVM_CAP_ARM_PMU_V3 is not offered");
	}
	vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0)
		die("KVM_CREATE_VM");
	ram = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		die("mmap guest RAM");
	load_payload(ram);
	region = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = GUEST_RAM_BASE, .memory_size = GUEST_RAM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)ram,
	};
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	if (opt.marker_path) {
		marker_fd = open(opt.marker_path, O_WRONLY | O_CLOEXEC);
		if (marker_fd < 0)
			die("open %s", opt.marker_path);
	}
	exits_csv = open_csv(opt.exits_path,
			     "ts,vcpu,cpu,ret,errno,exit_reason,exit_name,fail_cpu,"
			     "hardware_entry_failure_reason,mmio_addr,mmio_len,mmio_data");
	reads_csv = open_csv(opt.reads_path, "seq,ts,vcpu,cpu,cntvct,pmccntr,undef_esr");
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	pthread_sigmask(SIG_BLOCK, &blocked, NULL); /* inherited; the vCPU thread unblocks them */
	/* the vCPU runs on its own thread, as in QEMU: the harness moves that thread */
	if (pthread_create(&thread, NULL, vcpu_thread, NULL))
		die("pthread_create");
	pthread_join(thread, NULL);
	fclose(exits_csv);
	fclose(reads_csv);
	return 0;
}
