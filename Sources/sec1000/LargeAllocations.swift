#if os(Linux)
import CMallocCalls
#endif

/// Large blocks get mappings of their own, returned to the system when freed.
///
/// glibc raises its mmap threshold to the size of the largest mapped block freed (up to 32 MiB), so
/// after the first 0.5–1.4 MB HTTP response at 247 devices later ones came from the threads'
/// arenas, which kept the memory: +11 MiB of anonymous memory after 200 `/api/status`, against
/// +3.6 MiB with the threshold fixed at its default 128 KiB (Docs/performance.md, "The HTTP face").
/// The Modbus and polling paths allocate far less than 128 KiB at a time (the load benchmark
/// measures them with this setting).
func keepLargeAllocationsMapped() {
    #if os(Linux)
    _ = mallopt(SEC1000_M_MMAP_THRESHOLD, 128 * 1024)
    #endif
}
