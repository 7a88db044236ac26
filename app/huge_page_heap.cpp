// Linked into the programs that run servers together with TCMalloc
// (copycat_fast_allocator in cmake/CopycatTargets.cmake): TCMalloc's heap
// grows in pieces of whole, aligned 2 MiB pages that the kernel is asked to
// back with transparent huge pages (MADV_HUGEPAGE, for kernels in madvise
// mode, the default of many distributions). A server that installs a
// snapshot of hundreds of megabytes touches that much fresh memory at once;
// one fault per 2 MiB instead of per 4 KiB makes that several times faster
// (a new copycatd catching up a 100 MB snapshot: 0.66-0.72 -> 0.29-0.36 s on
// the benchmark machine, docs/BENCHMARKS.md).

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <gperftools/malloc_extension.h>

namespace {

constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

/// TCMalloc's source of memory: anonymous mappings aligned to and sized in
/// huge pages, advised to use them. Falls back to TCMalloc's own allocator
/// when a mapping fails.
class HugePageSystemAllocator final : public SysAllocator {
 public:
  explicit HugePageSystemAllocator(SysAllocator* fallback) : m_fallback(fallback) {}

  void* Alloc(std::size_t size, std::size_t* actualSize, std::size_t alignment) override {
    const std::size_t align = std::max(alignment, kHugePageBytes);
    if (size == 0 || size > SIZE_MAX / 2 || align > SIZE_MAX / 4)
      return fallback(size, actualSize, alignment);
    const std::size_t rounded = (size + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    const std::size_t reserved = rounded + align;
    void* mapped =
        ::mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return fallback(size, actualSize, alignment);
    const auto base = reinterpret_cast<std::uintptr_t>(mapped);
    const std::uintptr_t start = (base + align - 1) / align * align;
    const std::uintptr_t end = start + rounded;
    if (start > base) ::munmap(mapped, start - base);
    if (base + reserved > end) ::munmap(reinterpret_cast<void*>(end), base + reserved - end);
    // Only a hint: a kernel without transparent huge pages ignores it.
    (void)::madvise(reinterpret_cast<void*>(start), rounded, MADV_HUGEPAGE);
    if (actualSize) *actualSize = rounded;
    return reinterpret_cast<void*>(start);
  }

 private:
  void* fallback(std::size_t size, std::size_t* actualSize, std::size_t alignment) {
    return m_fallback ? m_fallback->Alloc(size, actualSize, alignment) : nullptr;
  }

  SysAllocator* m_fallback;
};

// TCMalloc (a shared library) is initialized before this program's statics.
// The allocator is never destroyed: TCMalloc may grow its heap until exit.
[[maybe_unused]] const bool kHugePageHeapInstalled = [] {
  MallocExtension* extension = MallocExtension::instance();
  extension->SetSystemAllocator(new HugePageSystemAllocator(extension->GetSystemAllocator()));
  return true;
}();

}  // namespace
