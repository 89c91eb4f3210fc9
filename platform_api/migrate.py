"""``python -m platform_api.migrate [revision]``: upgrade ``$GLA_DATABASE_URL`` (default head).
The app also migrates at start-up; this is for operators who prefer to do it first."""

from __future__ import annotations

import sys

from .core.config import Settings
from .core.db import current_revision, make_engine, migrate


def main() -> None:
    st = Settings.from_env()
    eng = make_engine(st.database_url)
    migrate(eng, sys.argv[1] if len(sys.argv) > 1 else "head")
    print(f"{st.database_url.split('@')[-1]}: at revision {current_revision(eng)}")


if __name__ == "__main__":
    main()
