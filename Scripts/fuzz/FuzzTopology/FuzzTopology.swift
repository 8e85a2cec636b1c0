// libFuzzer entry point for the topology loader and validator, and the encoder that writes a topology back.

@testable import LANCompute

/// Loads the input as a topology file; what loads must be written back as YAML that loads into the same model.
func fuzzTopology(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    let environment = ["HOME": "/home/fuzz", "TOKEN": "secret", "EMPTY": ""]
    guard let topology = try? TopologyLoader.load(yaml: text, file: "fuzz.yaml", environment: environment) else { return }
    let written = TopologyEncoder.yaml(for: topology)
    do {
        let again = try TopologyLoader.load(yaml: written, file: "written.yaml", environment: environment)
        precondition(
            again.withoutSourcePositions() == topology.withoutSourcePositions(),
            "the encoder's YAML loads into another model:\n\(written)")
    } catch {
        fatalError("the encoder's YAML does not load: \(error)\n\(written)")
    }
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    fuzzTopology(start.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? [])
    return 0
}
#endif
