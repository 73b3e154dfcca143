namespace serverswap {}
