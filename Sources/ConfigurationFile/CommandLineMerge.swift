extension ConfigurationFile {
    /// The command line `arguments` (without the program's name) with a configuration file's
    /// options put in: for `bridge ... --config FILE ...`, the file's keys become arguments ahead
    /// of the command line's own, except those whose option the command line gives. So a flag wins
    /// over its key, and a list option given on the command line (`--control-allow`) replaces the
    /// file's list rather than adding to it. Other arguments come back unchanged.
    public static func mergingFile(into arguments: [String], keys: [ConfigurationKey] = ConfigurationKey.bridge) throws(ConfigurationFileError) -> [String] {
        guard arguments.first == "bridge", let path = configPath(in: arguments) else { return arguments }
        let file = try load(path, keys: keys)
        return [arguments[0]] + file.arguments(except: optionNames(in: arguments)) + arguments.dropFirst()
    }

    /// The value of `--config` in `arguments`, if given (the last one, as for any option).
    public static func configPath(in arguments: [String]) -> String? {
        var path: String?
        var index = arguments.startIndex
        while index < arguments.endIndex, arguments[index] != "--" {
            let argument = arguments[index]
            if argument == "--config", index + 1 < arguments.endIndex {
                path = arguments[index + 1]
                index += 1
            } else if argument.hasPrefix("--config=") {
                path = String(argument.dropFirst("--config=".count))
            }
            index += 1
        }
        return path
    }

    /// The long options `arguments` names (`interval` for `--interval 5` or `--interval=5`).
    static func optionNames(in arguments: [String]) -> Set<String> {
        var names: Set<String> = []
        for argument in arguments.prefix(while: { $0 != "--" }) where argument.hasPrefix("--") {
            names.insert(String(argument.dropFirst(2).prefix { $0 != "=" }))
        }
        return names
    }
}
