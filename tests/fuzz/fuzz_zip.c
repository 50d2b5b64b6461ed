/*
 * libFuzzer: the zip reader of engine/doc on bytes from outside, under small
 * limits; see doc_fuzz.h for what must hold. Members that are archives
 * are opened too, so the other readers are reached from here as well.
 */
#include "doc_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return doc_fuzz_one(DOC_ZIP, "up.docx", data, size);
}
