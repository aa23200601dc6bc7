#!/bin/busybox sh
# /init of the emulated two-PMU host: record every case named on the kernel command line
# (pmucases=a,b,...; default: every file in /cases), then write the results as a tar archive
# to the virtio disk /dev/vda and power off.
#
# A case file (/cases/NAME) is sourced; it sets
#   VMM_ARGS   arguments of /bin/vmm besides the files (--pmu, --init-cpu, --count, --spin, ...)
#   SCHEDULE   "CPU:MILLISECONDS ..." - where the vCPU thread is moved, for how long, in order
#   ROUNDS     how many times the schedule runs; then the VMM gets SIGTERM and stops
# Each move is written to trace_marker ("pmu-replay-harness: move tid=T cpu=C") before the
# taskset, so the trace shows when it was asked for.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing
mount -t tmpfs tmpfs /out
T=/sys/kernel/tracing

host_facts() {
	uname -a
	echo "--- /proc/cmdline"; cat /proc/cmdline
	echo "--- dmesg (kvm, pmu, gic, partitions)"
	dmesg | grep -i -E 'kvm|pmu|hw perfevents|GIC|partition|CPU features|Hyp'
	echo "--- /sys/bus/event_source/devices"
	for d in /sys/bus/event_source/devices/*; do
		echo "$(basename "$d") type=$(cat "$d/type") cpus=$(cat "$d/cpus" 2>/dev/null)"
	done
	echo "--- /proc/cpuinfo"; cat /proc/cpuinfo
}

# The host topology as a pmu-replay-topology/1 sysfs snapshot (importers/topology.py).
topology_json() {
	echo '{'
	echo '  "format": "pmu-replay-topology/1",'
	echo "  \"cpus_possible\": \"$(cat /sys/devices/system/cpu/possible)\","
	echo '  "event_source_devices": {'
	sep=""
	for d in /sys/bus/event_source/devices/*; do
		files="\"type\": \"$(cat "$d/type")\""
		[ -f "$d/cpus" ] && files="$files, \"cpus\": \"$(cat "$d/cpus")\""
		[ -f "$d/cpumask" ] && files="$files, \"cpumask\": \"$(cat "$d/cpumask")\""
		printf '%s    "%s": {%s}' "$sep" "$(basename "$d")" "$files"
		sep=",
"
	done
	echo
	echo '  },'
	echo '  "cpufreq": {},'
	printf '  "cpu_capacity": {'
	sep=""
	for c in /sys/devices/system/cpu/cpu[0-9]*; do
		[ -f "$c/cpu_capacity" ] || continue
		printf '%s"%s": "%s"' "$sep" "${c##*/cpu}" "$(cat "$c/cpu_capacity")"
		sep=", "
	done
	echo '}'
	echo '}'
}

trace_setup() {
	echo 0 > $T/tracing_on
	echo mono > $T/trace_clock  # CLOCK_MONOTONIC: the clock of the VMM's own logs
	echo 16384 > $T/buffer_size_kb
	echo 1 > $T/options/record-tgid
	echo > $T/set_event
	for e in sched/sched_switch sched/sched_migrate_task sched/sched_wakeup \
		kvm/kvm_entry kvm/kvm_exit kvm/kvm_userspace_exit kvm/kvm_sys_access \
		kvm/kvm_vcpu_wakeup; do
		echo 1 > $T/events/$e/enable
	done
	echo > $T/trace
}

run_case() {
	name=$1
	out=/out/$name
	mkdir -p "$out"
	VMM_ARGS=""
	SCHEDULE=""
	ROUNDS=1
	. /cases/"$name"
	echo "=== case $name: vmm $VMM_ARGS; schedule $SCHEDULE x $ROUNDS"
	trace_setup
	rm -f /tmp/tid
	echo 1 > $T/tracing_on
	vmm --payload /guest.bin --exits "$out/exits.csv" --reads "$out/vmm-reads.csv" \
		--marker $T/trace_marker --tid-file /tmp/tid $VMM_ARGS > "$out/vmm.log" 2>&1 &
	vmm_pid=$!
	while [ ! -s /tmp/tid ] && kill -0 $vmm_pid 2>/dev/null; do usleep 1000; done
	tid=$(cat /tmp/tid)
	# let the vCPU initialise on the CPU the VMM pinned it to before moving it
	while ! grep -q vcpu_init "$out/vmm.log" && kill -0 $vmm_pid 2>/dev/null; do usleep 1000; done
	round=0
	while [ $round -lt "$ROUNDS" ] && kill -0 $vmm_pid 2>/dev/null; do
		round=$((round + 1))
		for step in $SCHEDULE; do
			cpu=${step%%:*}
			ms=${step##*:}
			kill -0 $vmm_pid 2>/dev/null || break
			echo "pmu-replay-harness: move tid=$tid cpu=$cpu" > $T/trace_marker
			taskset -p -c "$cpu" "$tid" > /dev/null
			usleep $((ms * 1000))
		done
	done
	echo "pmu-replay-harness: stop tid=$tid" > $T/trace_marker
	kill -TERM $vmm_pid 2>/dev/null
	wait $vmm_pid
	echo "vmm exit status $?" >> "$out/vmm.log"
	echo 0 > $T/tracing_on
	cat $T/trace > "$out/trace.txt"
	cat $T/per_cpu/cpu*/stats > "$out/trace-stats.txt"
	topology_json > "$out/topology.json"
	host_facts > "$out/host.txt"
	echo "$name: $(wc -l < "$out/vmm-reads.csv") read lines, $(wc -l < "$out/trace.txt") trace lines"
	tail -2 "$out/vmm.log"
}

cases=$(sed -n 's/.*pmucases=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
[ -n "$cases" ] || cases=$(ls /cases)
host_facts | grep -A40 'dmesg' | head -40
for c in $cases; do
	run_case "$c"
done
dmesg > /out/dmesg.txt
if [ -b /dev/vda ]; then
	(cd /out && tar cf /dev/vda .) && sync
else
	echo "pmu-replay-harness: no /dev/vda (virtio-blk disk): results are lost"
fi
echo "pmu-replay-harness: done"
poweroff -f
