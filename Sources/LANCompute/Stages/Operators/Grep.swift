// The `grep` builtin: keeps (or drops, inverted) the items a regular expression matches.

extension OperatorSpec {
    static let grep = OperatorSpec(
        name: "grep",
        summary: "keeps items matching a regular expression (or not matching, with invert: true)",
        options: [OperatorOption("pattern", .regex, required: true), OperatorOption("invert", .boolean)]
    ) { options in
        guard let regex = options.regex("pattern") else { preconditionFailure("validate requires 'pattern'") }
        let invert = options.boolean("invert") ?? false
        return { item in
            let matches = String(decoding: item.payload, as: UTF8.self).contains(regex)
            return matches != invert ? [item.payload] : []
        }
    }
}
