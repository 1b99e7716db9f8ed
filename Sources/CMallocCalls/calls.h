#ifndef SEC1000_CMALLOCCALLS_H
#define SEC1000_CMALLOCCALLS_H

/* glibc's allocator settings, declared in <malloc.h>, which Swift's Glibc module leaves out.
   No system header is included, so nothing here shadows what Glibc exports. */
#ifdef __linux__
int mallopt(int param, int value);
/* <malloc.h>: the size from which a block gets a mapping of its own. */
#define SEC1000_M_MMAP_THRESHOLD (-3)
/* Returns the free pages of every malloc arena to the system. */
int malloc_trim(unsigned long pad);
#endif

#endif
