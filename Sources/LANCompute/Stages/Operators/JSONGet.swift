// The `json-get` builtin: one field of a JSON object item.

extension OperatorSpec {
    static let jsonGet = OperatorSpec(
        name: "json-get",
        summary: "the value of a (dotted) field of a JSON object item; items without it are dropped",
        options: [OperatorOption("field", .nonEmptyText, required: true)]
    ) { options in
        guard let field = options.text("field") else { preconditionFailure("validate requires 'field'") }
        return { item in
            guard let value = StageJSON.value(at: field, in: item.payload) else { return [] }
            return [value]
        }
    }
}
