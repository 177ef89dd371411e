"""daz raises its own open-file limit to what its rooms need (scaleout.limits)."""
from __future__ import annotations

import resource

from daz.scaleout.limits import files_needed, raise_open_file_limit


def test_the_soft_limit_is_raised_toward_the_hard_limit_and_never_lowered():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        low = min(512, soft)
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
        now, wanted = raise_open_file_limit(1000)
        assert wanted == files_needed(1000) > low
        expected = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now == expected
        raise_open_file_limit(1)  # a small need leaves a higher limit alone
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == expected
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
