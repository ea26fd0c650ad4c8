// Process-wide heap allocation counter (see alloc_count.cpp).
#pragma once

namespace bench {
long alloc_count();  // malloc-level allocations since start (operator new included); -1: not counted
long alloc_bytes();  // bytes requested by them; -1: not counted
}  // namespace bench
