"""DeAOT (yoxu515/aot-benchmark) as cleanfeed's neural tracker: our own port, loading the official checkpoints strictly."""
