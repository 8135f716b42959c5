"""`python -m dss_client.sdk module:function`: the same as `dss serve module:function`."""
import sys

from .serve import main

sys.exit(main())
