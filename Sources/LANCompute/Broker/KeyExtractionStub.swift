// Temporary: whole-item keys until the stage layer's key extraction lands.
extension KeyExtractor {
    func key(of item: [UInt8]) -> [UInt8]? { item }
}
