// The number parsers moved to a module of their own so the configuration file uses the same ones;
// re-exported so the commands (and their tests) see them as before.
@_exported import OptionValues
