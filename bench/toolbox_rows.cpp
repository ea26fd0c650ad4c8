// Out-of-line definitions of the toolbox rows (see toolbox_rows.hpp).
#include "toolbox_rows.hpp"

#include "toolbox_bench.hpp"
