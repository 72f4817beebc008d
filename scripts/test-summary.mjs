// Prints the closing line CI reads ("N passed, N failed, N skipped") from
// vitest's JSON report, and fails when any test was skipped or none ran:
// a skipped test is not a passed one.
import { readFileSync } from 'node:fs'

const report = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const passed = report.numPassedTests
const failed = report.numFailedTests + (report.numRuntimeErrorTestSuites ?? 0)
const skipped = report.numPendingTests + report.numTodoTests
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
if (failed > 0 || skipped > 0 || passed === 0 || report.success === false) process.exit(1)
