// neighbours: implementation pending (issue 6); registered here so the build lists stay stable.
#include "lindiff/types.hpp"
