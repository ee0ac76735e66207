import Foundation
@testable import MHDServers
import Testing

@Suite("CPU budget for the default thread count", .timeLimit(.minutes(2)))
struct CPUBudgetTests {
    /// Fake cgroup files: path → contents.
    func quota(_ cgroups: String, _ files: [String: String]) -> Double? {
        CPUBudget.quota(root: "/cg", cgroups: cgroups) { files[$0] }
    }

    @Test func cgroupV2QuotaIsTheTightestAlongThePath() {
        let cgroups = "0::/kubepods/pod1/app\n"
        #expect(quota(cgroups, ["/cg/kubepods/pod1/app/cpu.max": "150000 100000\n"]) == 1.5)
        #expect(quota(cgroups, [
            "/cg/kubepods/pod1/app/cpu.max": "max 100000\n",
            "/cg/kubepods/pod1/cpu.max": "250000 100000\n",
            "/cg/kubepods/cpu.max": "max 100000\n",
        ]) == 2.5)
        #expect(quota(cgroups, [
            "/cg/kubepods/pod1/app/cpu.max": "400000 100000\n",
            "/cg/kubepods/pod1/cpu.max": "10000 100000\n",
        ]) == 0.1)
        #expect(quota(cgroups, ["/cg/kubepods/pod1/app/cpu.max": "max 100000\n"]) == nil)
        #expect(quota(cgroups, [:]) == nil)
        // A container that sees only its own cgroup, at the root.
        #expect(quota("0::/\n", ["/cg/cpu.max": "200000 100000\n"]) == 2)
    }

    @Test func cgroupV1CFSQuota() {
        let cgroups = "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n"
        #expect(quota(cgroups, [
            "/cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
            "/cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        ]) == 3)
        #expect(quota(cgroups, [
            "/cg/cpu/cpu.cfs_quota_us": "50000\n", "/cg/cpu/cpu.cfs_period_us": "100000\n",
        ]) == 0.5)
        #expect(quota(cgroups, [
            "/cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1\n",
            "/cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        ]) == nil)
        // The memory controller's files are not a CPU quota.
        #expect(quota("3:memory:/x\n", ["/cg/memory/x/cpu.cfs_quota_us": "100000\n", "/cg/memory/x/cpu.cfs_period_us": "100000\n"]) == nil)
    }

    @Test func countIsAffinityCappedByTheQuotaRoundedUpAndAtLeastOne() {
        #expect(CPUBudget(online: 64, affinity: nil, quota: nil).count == 64)
        #expect(CPUBudget(online: 64, affinity: 8, quota: nil).count == 8)
        #expect(CPUBudget(online: 64, affinity: 8, quota: 0.1).count == 1)
        #expect(CPUBudget(online: 64, affinity: 8, quota: 1.01).count == 2)
        #expect(CPUBudget(online: 64, affinity: 2, quota: 16).count == 2)
        #expect(CPUBudget(online: 0, affinity: nil, quota: nil).count == 1)
    }

    @Test func readsThisProcessFromFakeFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cpu-budget-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("fs/app"), withIntermediateDirectories: true)
        try "0::/app\n".write(to: directory.appendingPathComponent("cgroup"), atomically: true, encoding: .utf8)
        try "100000 100000\n".write(to: directory.appendingPathComponent("fs/app/cpu.max"), atomically: true, encoding: .utf8)
        let budget = CPUBudget.read(root: directory.path + "/fs", cgroupFile: directory.path + "/cgroup")
        #expect(budget.quota == 1)
        #expect(budget.count == 1)
        #expect(budget.affinity != nil)
        // The real process: never more than its affinity mask.
        let real = CPUBudget.current
        #expect(real.count >= 1 && real.count <= (real.affinity ?? real.online))
    }
}
