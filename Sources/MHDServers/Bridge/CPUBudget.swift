import CMicroHTTPD

#if canImport(Glibc)
import Glibc
#endif

/// How many CPUs this process may actually use, for the default engine thread count: the CPUs
/// of its affinity mask (`taskset`, cpusets), capped by the CPU quota of its cgroup and every
/// ancestor (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) rounded up,
/// and at least 1. A container limited to 100m CPU on a 64-core node gets 1, not 64.
struct CPUBudget: Sendable, Equatable {
    /// Online CPUs of the machine.
    var online: Int
    /// CPUs in the affinity mask, if known.
    var affinity: Int?
    /// The tightest cgroup quota in CPUs (1.5 for `150000 100000`), if any.
    var quota: Double?

    /// The number of CPUs to size thread pools for.
    var count: Int {
        var cpus = affinity ?? online
        if let quota, quota > 0 { cpus = min(cpus, Int(quota.rounded(.up))) }
        return max(1, cpus)
    }

    /// The budget of this process, read once.
    static let current = CPUBudget.read()

    /// Reads the budget; `root` and `cgroupFile` are parameters so tests can pass fake files.
    static func read(root: String = "/sys/fs/cgroup", cgroupFile: String = "/proc/self/cgroup") -> CPUBudget {
        let affinity = Int(mhds_affinity_cpu_count())
        return CPUBudget(
            online: max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))),
            affinity: affinity > 0 ? affinity : nil,
            quota: quota(root: root, cgroups: (try? System.readFile(cgroupFile)) ?? "") { try? System.readFile($0) })
    }

    /// The tightest CPU quota along this process's cgroup paths, in CPUs.
    ///
    /// `cgroups` is the text of `/proc/self/cgroup`: `0::/path` for cgroup v2, and
    /// `N:cpu,cpuacct:/path` for the v1 CPU controller. A path that is not visible under `root`
    /// (a container that sees only its own cgroup at the root) falls back to the root itself.
    static func quota(root: String, cgroups: String, read: (String) -> String?) -> Double? {
        var quotas: [Double] = []
        for line in cgroups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let path = String(fields[2])
            if fields[0] == "0" && fields[1].isEmpty {
                for directory in ancestors(of: path, under: root) {
                    if let text = read(directory + "/cpu.max"), let quota = parseCPUMax(text) { quotas.append(quota) }
                }
            } else if fields[1].split(separator: ",").contains("cpu") {
                // The controller's own mount (`cpu,cpuacct`), or `cpu` where that is a link to it.
                let mounts = fields[1] == "cpu" ? [root + "/cpu"] : [root + "/" + fields[1], root + "/cpu"]
                for mount in mounts {
                    for directory in ancestors(of: path, under: mount) {
                        if let quota = read(directory + "/cpu.cfs_quota_us"), let period = read(directory + "/cpu.cfs_period_us"),
                            let cpus = parseCFS(quota: quota, period: period)
                        {
                            quotas.append(cpus)
                        }
                    }
                }
            }
        }
        return quotas.min()
    }

    /// cgroup v2 `cpu.max`: `max 100000` (no limit) or `QUOTA PERIOD` in microseconds.
    static func parseCPUMax(_ text: String) -> Double? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count == 2, let quota = Double(fields[0]), let period = Double(fields[1]), quota > 0, period > 0 else {
            return nil
        }
        return quota / period
    }

    /// cgroup v1: `cpu.cfs_quota_us` (-1: no limit) over `cpu.cfs_period_us`.
    static func parseCFS(quota: String, period: String) -> Double? {
        guard let quota = Double(quota.filter { $0 != "\n" && $0 != " " }),
            let period = Double(period.filter { $0 != "\n" && $0 != " " }), quota > 0, period > 0
        else { return nil }
        return quota / period
    }

    /// `root/a/b`, `root/a`, `root` for the path `/a/b`.
    static func ancestors(of path: String, under root: String) -> [String] {
        var components = path.split(separator: "/").map(String.init)
        var directories: [String] = []
        while !components.isEmpty {
            directories.append(root + "/" + components.joined(separator: "/"))
            components.removeLast()
        }
        directories.append(root)
        return directories
    }
}
