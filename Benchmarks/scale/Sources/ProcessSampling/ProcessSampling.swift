#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// What a benchmark process costs, read from /proc and getrusage without Foundation (it would add
// to the memory measured), and the few helpers both benchmarks print with.

/// Writes one line to standard error.
public func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress!, $0.count) }
}

/// Says what is wrong, with the program's name, and exits 2.
public func fail(_ message: String) -> Never {
    let program = CommandLine.arguments.first?.split(separator: "/").last.map(String.init) ?? "benchmark"
    printError("\(program): \(message)")
    exit(2)
}

// MARK: What the process costs, from /proc and getrusage

/// Threads of this process: the entries of /proc/self/task.
public func threadCount() -> Int {
    guard let directory = opendir("/proc/self/task") else { return -1 }
    defer { closedir(directory) }
    var count = 0
    while let entry = readdir(directory) {
        let first = withUnsafeBytes(of: entry.pointee.d_name) { $0[0] }
        if first != UInt8(ascii: ".") { count += 1 }
    }
    return count
}

/// A `kB` field of /proc/self/status (VmRSS, VmHWM).
public func statusKiB(_ fields: [String]) -> [Int] {
    let fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return fields.map { _ in -1 } }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
        if got <= 0 { break }
        bytes += buffer[0..<got]
    }
    let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
    return fields.map { field in
        guard let line = lines.first(where: { $0.hasPrefix(field + ":") }) else { return -1 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }
}

/// User and system CPU seconds of the whole process so far.
public func cpuSeconds() -> (user: Double, system: Double) {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return (seconds(usage.ru_utime), seconds(usage.ru_stime))
}

/// User plus system CPU seconds of the whole process so far.
public func totalCPUSeconds() -> Double {
    let time = cpuSeconds()
    return time.user + time.system
}

public func median(_ values: [Int]) -> Int {
    guard !values.isEmpty else { return -1 }
    return values.sorted()[values.count / 2]
}

public func seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
}

/// Formats `value` with `digits` decimals (no Foundation: it would add to the memory measured).
public func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale)
    let fraction = Int(scaled - Double(whole) * scale)
    var text = (value < 0 && scaled > 0 ? "-" : "") + "\(whole)"
    if digits > 0 {
        let digitsText = "\(fraction)"
        text += "." + String(repeating: "0", count: digits - digitsText.count) + digitsText
    }
    return text
}
