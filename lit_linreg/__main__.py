"""``python -m lit_linreg`` is the same as ``lit-linreg``."""

from lit_linreg.launch import main

main()
