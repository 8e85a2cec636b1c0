// A Swift concurrency task executor of one thread of its own, for the HTTP server's async code.

import Foundation

/// Runs the jobs of the tasks that prefer it (`Task(executorPreference:)`, inherited by their
/// child tasks) on one dedicated thread, in order.
///
/// The dashboard's server is started and stopped by threads that block while they wait (the
/// broker's, the CLI's, a synchronous test on the global pool); if the server's own async code
/// ran on the global concurrency pool, which has one thread per core, such waits could take every
/// thread of it and the server would never run. On its own thread it always can.
final class DedicatedThreadExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: `jobs` and `stopping` are only touched while `condition` is locked.
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false
    /// After ``shutDown()``, how long the thread waits for late jobs (a task finishing) before it ends.
    static let lingerAfterShutdown: TimeInterval = 0.5

    init(name: String) {
        let thread = Thread { [self] in self.serve() }
        thread.name = name
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread end once no job has come for ``lingerAfterShutdown``.
    func shutDown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func serve() {
        while true {
            condition.lock()
            while jobs.isEmpty {
                if stopping {
                    if !condition.wait(until: Date(timeIntervalSinceNow: Self.lingerAfterShutdown)), jobs.isEmpty {
                        condition.unlock()
                        return
                    }
                } else {
                    condition.wait()
                }
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}
